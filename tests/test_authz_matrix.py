"""Authorization matrix built from ``app.url_map``: every route × method × {anonymous, blogger A,
blogger B, super admin} is requested and its status compared with the rule for its endpoint.

Rules are looked up by exact endpoint first, then by blueprint (``"sync."``); a route whose
endpoint has neither fails the suite with a message naming it, so a new blueprint cannot ship
without deciding who may open it. Path parameters get real ids from the fixture data (blogger
A's); blogger B is sent A's ids and must get 404 for anything A owns.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable

import pytest
from flask import Flask
from werkzeug.routing import Rule
from werkzeug.routing.converters import AnyConverter

from portal.credentials import set_credential
from portal.extensions import db
from portal.models import Blogger, SyncRun, User
from tests.factories import PASSWORD
from tests.plugin_simulator import HEALTHY, NO_SST

ROLES = ("anonymous", "blogger_a", "blogger_b", "admin")
DAY = date(2026, 5, 14)
QUERY = {"start": DAY.isoformat(), "end": DAY.isoformat()}  # GET ranges for preview / download


@dataclass(frozen=True)
class Expect:
    statuses: frozenset[int]
    location: str | None = None  # the redirect must start with this

    def check(self, response) -> str | None:
        if response.status_code not in self.statuses:
            return f"status {response.status_code}, expected {sorted(self.statuses)}"
        if self.location is not None and not response.headers.get("Location", "").startswith(self.location):
            return f"redirect to {response.headers.get('Location')!r}, expected {self.location}…"
        return None


def expect(*statuses: int, location: str | None = None) -> Expect:
    return Expect(frozenset(statuses), location)


TO_LOGIN = expect(302, location="/login?next=")
FORBIDDEN = expect(403)
NOT_FOUND = expect(404)
READ_OK = expect(200)
WRITE_OK = expect(302, 303, 400, 422)  # an empty POST: redirect after success or a form error, never 5xx

# Parameters naming something a blogger owns: blogger B gets A's id and must see 404.
OWNED_PARAMS = {"run_id"}
RuleFn = Callable[[str, str, Rule], Expect]


def _logged_in(role: str) -> bool:
    return role != "anonymous"


def _login_page(role: str, method: str, rule: Rule) -> Expect:
    if _logged_in(role):
        return expect(302)  # already signed in: sent to the role's home
    return READ_OK if method == "GET" else expect(400)


def _logout(role: str, method: str, rule: Rule) -> Expect:
    return expect(302, location="/login") if _logged_in(role) else TO_LOGIN


def _password(role: str, method: str, rule: Rule) -> Expect:
    if not _logged_in(role):
        return TO_LOGIN
    return READ_OK if method == "GET" else expect(400)


def _admin_only(role: str, method: str, rule: Rule) -> Expect:
    if role == "anonymous":
        return TO_LOGIN
    if role != "admin":
        return FORBIDDEN  # a blogger never reaches an admin view, whatever the id
    return READ_OK if method == "GET" else WRITE_OK


def _blogger_only(role: str, method: str, rule: Rule) -> Expect:
    if role == "anonymous":
        return TO_LOGIN
    if role == "admin":
        return FORBIDDEN
    if role == "blogger_b" and OWNED_PARAMS & set(rule.arguments):
        return NOT_FOUND  # B asks for A's run: indistinguishable from a run that does not exist
    return READ_OK if method == "GET" else WRITE_OK


def _signed_in_only(role: str, method: str, rule: Rule) -> Expect:
    """Default-deny for a new auth.* endpoint: it must at least require a login."""
    if role == "anonymous":
        return TO_LOGIN
    return READ_OK if method == "GET" else WRITE_OK


RULES: dict[str, RuleFn] = {
    # exact endpoints
    "static": lambda role, method, rule: READ_OK,
    "auth.login": _login_page,
    "auth.logout": _logout,
    "auth.change_password": _password,
    "auth.set_language": lambda role, method, rule: expect(302),
    "auth.index": lambda role, method, rule: expect(302, location="/login") if role == "anonymous" else expect(302),
    # whole blueprints
    "health.": lambda role, method, rule: expect(200, 503),  # public; 503 while no worker listens
    "auth.": _signed_in_only,
    "admin.": _admin_only,
    "sync.": _blogger_only,
    "reconcile.": _blogger_only,  # the blogger's own reconciliation page (portal/reconcile)
}


def rule_for(endpoint: str) -> RuleFn | None:
    if endpoint in RULES:
        return RULES[endpoint]
    blueprint = endpoint.rpartition(".")[0]
    return RULES.get(f"{blueprint}.") if blueprint else None


@dataclass(frozen=True)
class World:
    admin_email: str
    a_email: str
    b_email: str
    a_blogger: int
    b_blogger: int
    a_run: int
    b_run: int

    def email(self, role: str) -> str:
        return {"admin": self.admin_email, "blogger_a": self.a_email, "blogger_b": self.b_email}[role]


def make_world(app: Flask, factories) -> World:
    """An admin and two connected bloggers, each with one finished run."""
    with app.app_context():
        admin = factories.make_admin()
        a = factories.make_blogger("a@test.example")
        b = factories.make_blogger("b@test.example")
        set_credential(a, HEALTHY.name, HEALTHY.key, actor=None)
        set_credential(b, NO_SST.name, NO_SST.key, actor=None)
        runs = []
        for blogger in (a, b):
            run = SyncRun(blogger_id=blogger.id, sync_type="pos_invoice", start_date=DAY, end_date=DAY,
                          status="succeeded", trigger="user", row_count=0,
                          finished_at=datetime(2026, 5, 15, 1, tzinfo=timezone.utc))
            db.session.add(run)
            runs.append(run)
        db.session.commit()
        return World(admin.email, a.user.email, b.user.email, a.id, b.id, runs[0].id, runs[1].id)


PARAM_VALUES: dict[str, Callable[[World], object]] = {
    "blogger_id": lambda w: w.a_blogger,
    "run_id": lambda w: w.a_run,
    "lang": lambda w: "en",
    "filename": lambda w: "css/app.css",
}


def url_for_rule(rule: Rule, world: World) -> str:
    """The rule's URL with every parameter filled from blogger A's data."""
    values = {}
    for name in rule.arguments:
        converter = rule._converters.get(name)
        if isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0]
        elif name in PARAM_VALUES:
            values[name] = PARAM_VALUES[name](world)
        else:
            raise LookupError(f"{rule.endpoint} ({rule.rule}): no test value for <{name}>; "
                              "add one to PARAM_VALUES in tests/test_authz_matrix.py")
    return rule.build(values, append_unknown=False)[1]


def routes(app: Flask) -> list[tuple[Rule, str]]:
    pairs = [(rule, method) for rule in app.url_map.iter_rules()
             for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    # logout last: it ends the session the other requests use
    return sorted(pairs, key=lambda pair: (pair[0].endpoint == "auth.logout", pair[0].rule, pair[1]))


def login(client, email: str) -> None:
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302, response.status_code


def open_route(client, rule: Rule, method: str, world: World):
    url = url_for_rule(rule, world)
    if method == "GET":
        return client.get(url, query_string=QUERY)
    return client.open(url, method=method, data={})


@pytest.fixture
def world(app, factories) -> World:
    return make_world(app, factories)


def test_every_route_has_a_rule(app):
    missing = sorted({rule.endpoint for rule in app.url_map.iter_rules() if rule_for(rule.endpoint) is None})
    assert not missing, (f"No authorization rule for endpoint(s) {', '.join(missing)}: add one to RULES in "
                         "tests/test_authz_matrix.py (who may open it: anonymous, blogger A, blogger B, admin)")


def test_exact_rules_name_existing_endpoints(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    stale = [name for name in RULES if not name.endswith(".") and name not in endpoints]
    assert not stale, f"RULES names endpoints that no longer exist: {stale}"


def test_every_path_parameter_gets_a_real_value(app, world):
    problems = []
    for rule in app.url_map.iter_rules():
        try:
            url_for_rule(rule, world)
        except LookupError as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix(app, world, role):
    client = app.test_client()
    if _logged_in(role):
        login(client, world.email(role))
    failures, checked = [], 0
    for rule, method in routes(app):
        decide = rule_for(rule.endpoint)
        if decide is None:
            failures.append(f"{method} {rule.rule} [{rule.endpoint}]: no rule (see test_every_route_has_a_rule)")
            continue
        wanted = decide(role, method, rule)
        response = open_route(client, rule, method, world)
        checked += 1
        problem = wanted.check(response)
        if problem:
            failures.append(f"{role}: {method} {rule.rule} [{rule.endpoint}]: {problem}")
        if rule.endpoint == "auth.logout" and _logged_in(role):
            login(client, world.email(role))
    assert checked >= 15
    assert not failures, "\n".join(failures)


# --- the role is read from the database on every request -------------------------------------


def test_a_demoted_admin_loses_admin_pages_on_the_next_request(app, world):
    client = app.test_client()
    login(client, world.admin_email)
    assert client.get("/admin/aiaccount/").status_code == 200
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == world.admin_email))
        user.role = "blogger"
        db.session.commit()
    assert client.get("/admin/aiaccount/").status_code == 403
    assert client.post(f"/admin/aiaccount/bloggers/{world.a_blogger}/credential/delete").status_code == 403
    with app.app_context():
        assert db.session.get(Blogger, world.a_blogger).credential is not None  # nothing was removed


def test_a_deactivated_user_is_signed_out_on_the_next_request(app, world):
    client = app.test_client()
    login(client, world.a_email)
    assert client.get("/finance/aiaccount-sync/").status_code == 200
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == world.a_email))
        user.active = False
        db.session.commit()
    response = client.get("/finance/aiaccount-sync/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    assert client.post("/login", data={"email": world.a_email, "password": PASSWORD}).status_code == 401


def test_blogger_b_sees_own_run_and_a_sees_404_for_b(app, world):
    client = app.test_client()
    login(client, world.b_email)
    assert client.get(f"/finance/aiaccount-sync/runs/{world.b_run}").status_code == 200
    assert client.get(f"/finance/aiaccount-sync/runs/{world.a_run}").status_code == 404
    other = app.test_client()
    login(other, world.a_email)
    assert other.get(f"/finance/aiaccount-sync/runs/{world.b_run}").status_code == 404
    assert other.get("/finance/aiaccount-sync/runs/999999").status_code == 404
