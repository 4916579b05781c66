"""Fuzz every form and query string: dates, ids, types, unicode, huge values — never a 500.

Routes come from ``app.url_map`` (a new route is fuzzed without being listed here). Each request is
sent as the role that may use the route (and the others), with random path parameters, query
strings and form fields drawn from the names the forms use plus random ones. With TESTING on an
unhandled exception propagates, so any 500 fails the example and hypothesis shrinks it.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule
from werkzeug.routing.converters import AnyConverter, IntegerConverter

from tests.test_authz_matrix import World, login, make_world, routes

# The real AiAccount is never reached: a closed port answers "connection refused" at once.
CLOSED = {"AIACCOUNT_BASE_URL": "http://127.0.0.1:9", "AIACCOUNT_MAX_RETRIES": 0,
          "AIACCOUNT_CONNECT_TIMEOUT": 0.5, "AIACCOUNT_TIMEOUT": 0.5}

FIELDS = ["start", "end", "page", "q", "blogger", "entity_type", "date_from", "date_to", "api_key", "company_name",
          "currency", "tax_code_none", "tax_code_sst", "sales_account", "rounding_account", "expense_account",
          "bank_account", "account_cash", "account_card", "account_tng", "account_grabpay", "account_duitnow",
          "walk_in_customer", "auto_push_enabled", "auto_push_hour", "email", "password", "current_password",
          "new_password", "next", "type", "sync_type", "lang", "run_id", "id"]
NASTY = ["", " ", "0", "-1", "1", "2", "24", "-0", "1e999", "NaN", "inf", "null", "None", "true", "[]", "{}",
         "2026-05-14", "2026-02-30", "2026-13-01", "0001-01-01", "9999-12-31", "10000-01-01", "2026-5-1",
         "14/05/2026", "２０２６-０５-１４", "2026-05-14T00:00", "-2026-05-14", str(2**31), str(2**63), str(2**64),
         "9" * 400, "x" * 5000, "<script>alert(1)</script>", "' OR 1=1 --", "%", "%00", "\\", "../../etc/passwd",
         "//evil.example", "javascript:alert(1)", "\u202e\u0644\u0627", "李小龙", "🙂" * 50, "\r\nX-Injected: 1",
         "pos_invoice", "orders", "MYR", "en", "zh", "aia_key_\u00e9", "a@b.c"]
# The deterministic sweep sends these (the hypothesis runs draw from all of NASTY and more).
SWEEP = ["", "-1", "1e999", "2026-02-30", "0001-01-01", "9999-12-31", "２０２６-０５-１４", str(2**63), "9" * 400,
         "x" * 5000, "<script>alert(1)</script>", "%00", "//evil.example", "\u202e\u0644\u0627", "🙂" * 50,
         "\r\nX-Injected: 1"]
VALUES = st.one_of(
    st.sampled_from(NASTY),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.dates().map(lambda d: d.isoformat()),
    # any Unicode a browser can send (lone surrogates cannot be encoded as UTF-8 by a client)
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
)
NAMES = st.one_of(st.sampled_from(FIELDS), st.text(st.characters(blacklist_categories=("Cs",)), min_size=1,
                                                    max_size=12))
PARAMS = st.dictionaries(NAMES, st.one_of(VALUES, st.lists(VALUES, min_size=2, max_size=3)), max_size=8)


@pytest.fixture
def app_overrides():
    return dict(CLOSED)


def _path_value(draw, rule: Rule, name: str, world: World):
    converter = rule._converters.get(name)
    if isinstance(converter, IntegerConverter):
        return draw(st.one_of(st.sampled_from([world.a_blogger, world.b_blogger, world.a_run, world.b_run, 0]),
                              st.integers(min_value=0, max_value=2**70)))
    if isinstance(converter, AnyConverter):
        return draw(st.one_of(st.sampled_from(sorted(converter.items)), VALUES.filter(bool)))
    return draw(VALUES.filter(bool))


def _url(rule: Rule, values: dict) -> str | None:
    try:
        return rule.build(values, append_unknown=False)[1]
    except Exception:  # noqa: BLE001 - a value the converter cannot even express is not a request
        return None


def _fuzz(app, world: World, role: str, data) -> None:
    client = app.test_client()
    if role != "anonymous":
        login(client, world.email(role))
    candidates = [(rule, method) for rule, method in routes(app) if rule.endpoint != "auth.logout"]
    for _ in range(2):
        rule, method = data.draw(st.sampled_from(candidates), label="route")
        values = {name: _path_value(data.draw, rule, name, world) for name in rule.arguments}
        url = _url(rule, values)
        assume(url is not None)
        query = data.draw(PARAMS, label="query")
        form = data.draw(PARAMS, label="form") if method != "GET" else {}
        headers = data.draw(st.sampled_from([{}, {"HX-Request": "true"}]), label="headers")
        response = client.open(url, method=method, query_string=query, data=form, headers=headers)
        assert response.status_code < 500 or (rule.endpoint == "health.healthz" and response.status_code == 503), (
            method, url, query, form, response.status_code)


FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])


@pytest.mark.parametrize("role", ["anonymous", "blogger_a", "admin"])
def test_no_input_makes_a_500(app, factories, role):
    world = make_world(app, factories)

    @FUZZ
    @given(st.data())
    def run(data):
        _fuzz(app, world, role, data)

    run()


def test_every_route_takes_every_nasty_value_in_every_field(app, factories):
    """The deterministic sweep: each value of SWEEP in every known field at once, on every route,
    as every role the route does not simply refuse (403)."""
    from tests.test_authz_matrix import FORBIDDEN, rule_for, url_for_rule

    world = make_world(app, factories)
    checked = 0
    for role in ("blogger_a", "admin"):
        client = app.test_client()
        login(client, world.email(role))
        for rule, method in routes(app):
            decide = rule_for(rule.endpoint)
            if rule.endpoint in ("auth.logout", "static") or decide is None or decide(role, method, rule) == FORBIDDEN:
                continue
            url = url_for_rule(rule, world)
            for value in SWEEP:
                params = dict.fromkeys(FIELDS, value)
                if method == "GET":
                    response = client.get(url, query_string=params)
                else:
                    response = client.open(url, method=method, data=params)
                checked += 1
                assert response.status_code < 500 or rule.endpoint == "health.healthz", (role, method, url, value)
    assert checked > 300


# --- bugs fuzzing found (fixed; these keep them fixed) -----------------------------------------


def test_a_huge_page_number_on_the_runs_list_is_not_a_500(app, factories):
    world = make_world(app, factories)
    client = app.test_client()
    login(client, world.a_email)
    response = client.get("/finance/aiaccount-sync/pos_invoice/runs", query_string={"page": str(2**64)})
    assert response.status_code < 500


@pytest.mark.parametrize("key", ["aia_demo\u200bkey", "aia_ключ_1234"])
def test_an_api_key_with_characters_http_cannot_carry_is_a_form_error(app, factories, key):
    world = make_world(app, factories)
    client = app.test_client()
    login(client, world.admin_email)
    response = client.post(f"/admin/aiaccount/bloggers/{world.a_blogger}/credential",
                           data={"api_key": key, "company_name": "Some Co"})
    assert response.status_code == 400


def test_zero_width_characters_pasted_around_a_key_are_stripped(app, factories):
    from portal.credentials import clean_api_key

    assert clean_api_key("\ufeff aia_demo_key\u200b\n") == ("aia_demo_key", True)
    assert clean_api_key("aia_demo_key") == ("aia_demo_key", False)
    world = make_world(app, factories)
    client = app.test_client()
    login(client, world.admin_email)
    response = client.post(f"/admin/aiaccount/bloggers/{world.a_blogger}/credential",
                           data={"api_key": "\u200baia_demo_key\u200b", "company_name": "Some Co"})
    assert response.status_code == 302  # saved; the connection test then fails on the closed port
