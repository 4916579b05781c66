"""Security: the credential crypto and its key rotation, the API key never leaking anywhere, and
the web hardening (cookies, sessions, throttling, redirects, headers / CSP, CSRF, password hashes).

Real database, real Redis (RQ SimpleWorker), the simulator over HTTP. docs/security.md says what
these tests prove.
"""
from __future__ import annotations

import base64
import logging
import re
import secrets
import stat
import subprocess
import sys
import zlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from argon2 import PasswordHasher, extract_parameters
from argon2.low_level import Type
from rq import SimpleWorker
from rq.job import Job
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url

from config import ProductionConfig, TestConfig
from portal import create_app
from portal.credentials import reveal, set_credential
from portal.crypto import DecryptError, Keyring, KeyringError, Sealed, load_keyring
from portal.extensions import db
from portal.jobs import run_sync
from portal.models import AiAccountCredential, AuditLog, Blogger, LoginAttempt, SyncRun, User
from portal.queue import get_queue
from portal.security import CSP
from portal.syncs import request_sync
from tests.factories import PASSWORD
from tests.test_authz_matrix import World, login, routes, url_for_rule

ROOT = Path(__file__).resolve().parents[1]
MYT = timezone(timedelta(hours=8))
DAY = date(2026, 5, 14)
RANGE = {"start": DAY.isoformat(), "end": DAY.isoformat()}
HTMX = {"HX-Request": "true"}
V1 = TestConfig.AIACCOUNT_MASTER_KEYS
V2 = "v2:" + base64.b64encode(bytes(range(32))).decode()


def myt(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=MYT).astimezone(timezone.utc)


# --- the keyring ------------------------------------------------------------------------------


def test_first_key_encrypts_every_key_decrypts_and_each_nonce_is_fresh():
    old = Keyring.parse(V1)
    sealed_v1 = old.encrypt("aia_secret_1", 7, "Acme Sdn Bhd")
    ring = Keyring.parse(f"{V2},{V1}")
    assert ring.current_version == "v2" and ring.versions == ["v2", "v1"]
    assert ring.decrypt(sealed_v1, 7, "Acme Sdn Bhd") == "aia_secret_1"  # older keys still decrypt
    first, second = ring.encrypt("aia_secret_1", 7, "Acme Sdn Bhd"), ring.encrypt("aia_secret_1", 7, "Acme Sdn Bhd")
    assert first.key_version == "v2" and len(first.nonce) == 12
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext
    assert b"aia_secret_1" not in first.ciphertext
    assert len(first.ciphertext) == len("aia_secret_1") + 16  # AES-GCM: same length + 128-bit tag
    nonces = {ring.encrypt("k", 1, "c").nonce for _ in range(500)}
    assert len(nonces) == 500
    assert "v2" in repr(ring) and V2.split(":")[1] not in repr(ring)


def test_ciphertext_is_bound_to_its_blogger_and_company_and_tampering_fails():
    ring = Keyring.parse(V1)
    sealed = ring.encrypt("aia_secret_1", 7, "Acme Sdn Bhd")
    assert ring.decrypt(sealed, 7, "  acme sdn bhd ") == "aia_secret_1"  # the same company, as typed
    for blogger_id, company in ((8, "Acme Sdn Bhd"), (7, "Other Co")):
        with pytest.raises(DecryptError):
            ring.decrypt(sealed, blogger_id, company)
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    for bad in (Sealed("v1", sealed.nonce, flipped), Sealed("v1", bytes(12), sealed.ciphertext)):
        with pytest.raises(DecryptError):
            ring.decrypt(bad, 7, "Acme Sdn Bhd")
    with pytest.raises(DecryptError, match="no key 'v9'"):
        ring.decrypt(Sealed("v9", sealed.nonce, sealed.ciphertext), 7, "Acme Sdn Bhd")


def test_a_ciphertext_copied_to_another_row_does_not_decrypt(app_ctx, factories):
    one, two = factories.make_blogger(), factories.make_blogger()
    set_credential(one, "Same Company", "aia_key_of_one_1111", None)
    set_credential(two, "Same Company", "aia_key_of_two_2222", None)
    db.session.commit()
    stolen = one.credential
    two.credential.nonce, two.credential.ciphertext = stolen.nonce, stolen.ciphertext
    db.session.commit()
    assert reveal(one.credential) == "aia_key_of_one_1111"
    with pytest.raises(DecryptError):
        reveal(two.credential)


@pytest.mark.parametrize(("setting", "message"), [
    ("v1", "entry 1 is not 'version:base64key'"),
    ("v1:not base64!", "key v1 is not valid base64"),
    ("v1:" + base64.b64encode(b"short-key-material").decode(), "key v1 must be 32 bytes"),
    (f"{V1},{V1}", "repeats a key version"),
    (" , ", "holds no key"),
])
def test_a_malformed_keyring_is_refused_without_echoing_key_material(setting, message):
    with pytest.raises(KeyringError, match=re.escape(message)) as info:
        Keyring.parse(setting)
    assert "short-key-material" not in str(info.value) and "c2hvcnQta2V5" not in str(info.value)
    assert V1.split(":")[1] not in str(info.value)


def test_the_demo_generates_a_0600_key_file_once_and_says_so(tmp_path, caplog):
    key_file = tmp_path / "instance" / "master.key"
    caplog.set_level(logging.INFO, logger="portal.crypto")
    ring = load_keyring("", str(key_file), allow_generate=True)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    said = [r.getMessage() for r in caplog.records if r.name == "portal.crypto"]
    assert len(said) == 1 and f"generated a demo AES-256 master key into {key_file} (mode 0600)" in said[0]
    assert key_file.read_text().strip().split(":")[1] not in said[0]
    sealed = ring.encrypt("aia_demo", 1, "Co")
    caplog.clear()
    again = load_keyring("", str(key_file), allow_generate=True)  # a second process reuses it, silently
    assert again.decrypt(sealed, 1, "Co") == "aia_demo" and not caplog.records
    assert [p.name for p in key_file.parent.iterdir()] == ["master.key"]  # no temporary file left
    key_file.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        load_keyring("", str(key_file), allow_generate=True)


def test_production_never_generates_a_key(tmp_path):
    key_file = tmp_path / "master.key"
    with pytest.raises(KeyringError, match="AIACCOUNT_MASTER_KEYS is not set"):
        load_keyring("", str(key_file), allow_generate=False)
    assert not key_file.exists()


START_DRIVER = r"""
import contextlib, io, json, os, sys
results = []
base = dict(os.environ)
for env in json.loads(sys.argv[1]):
    os.environ.clear()
    os.environ.update({**base, **env})
    for name in [m for m in sys.modules if m in ("wsgi", "config") or m == "portal" or m.startswith("portal.")]:
        del sys.modules[name]
    err, out, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            import wsgi
            print("started", wsgi.app.config["SESSION_COOKIE_SECURE"])
        except SystemExit as exc:
            code = exc.code
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(results))
"""
GOOD_SECRET = "s" * 40
START_CASES = [
    ({"PORTAL_ENV": "production"}, "SECRET_KEY must be set in production"),
    ({"PORTAL_ENV": "production", "SECRET_KEY": "dev-only-not-secret", "AIACCOUNT_MASTER_KEYS": V1},
     "SECRET_KEY must be set in production"),
    ({"PORTAL_ENV": "production", "SECRET_KEY": GOOD_SECRET},
     "AIACCOUNT_MASTER_KEYS must be set in production (see docs/security.md)"),
    ({"PORTAL_ENV": "production", "SECRET_KEY": GOOD_SECRET, "AIACCOUNT_MASTER_KEYS": "v1:c2hvcnQ="},
     "AIACCOUNT_MASTER_KEYS key v1 must be 32 bytes (AES-256)"),
    ({"PORTAL_ENV": "staging"}, "PORTAL_ENV must be one of development, production; got 'staging'"),
    ({"PORTAL_ENV": "testing"}, "PORTAL_ENV must be one of development, production; got 'testing'"),  # CSRF off
    ({"AIACCOUNT_MAX_RETRIES": "three"}, "AIACCOUNT_MAX_RETRIES must be a whole number, got 'three'"),
    ({"PORTAL_ENV": "production", "SECRET_KEY": GOOD_SECRET, "AIACCOUNT_MASTER_KEYS": f"{V2},{V1}"}, None),
    ({}, None),  # development: the plain-http demo
]


def test_start_up_refuses_missing_or_malformed_secrets_with_one_line(tmp_path):
    """``import wsgi`` (what gunicorn and ``flask --app wsgi`` do), once per environment."""
    import json

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path}/p.sqlite",
           "AIACCOUNT_MASTER_KEY_FILE": str(tmp_path / "master.key")}
    done = subprocess.run([sys.executable, "-c", START_DRIVER, json.dumps([case for case, _ in START_CASES])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for (case, message), result in zip(START_CASES, results):
        if message is None:
            continue
        assert result["code"] == 2, (case, result)
        [line] = result["err"].strip().splitlines()  # one line, no traceback
        assert line.startswith(f"Configuration error: {message}"), line
        assert "c2hvcnQ" not in line
    production, development = results[-2:]
    assert (production["code"], production["out"].strip()) == (0, "started True"), production  # Secure cookie
    assert (development["code"], development["out"].strip()) == (0, "started False"), development
    assert not (tmp_path / "master.key").exists()  # start-up alone never writes a key


# --- rotation ---------------------------------------------------------------------------------


def test_rotate_keys_re_encrypts_under_the_newest_key_idempotently(app_ctx, runner, factories):
    bloggers = [factories.make_blogger() for _ in range(3)]
    for n, blogger in enumerate(bloggers):
        set_credential(blogger, f"Company {n}", f"aia_rotate_key_{n}_abcd", None)
    db.session.commit()
    before = {c.id: (c.nonce, c.ciphertext) for c in db.session.scalars(select(AiAccountCredential))}

    app_ctx.config["AIACCOUNT_MASTER_KEYS"] = f"{V2},{V1}"
    result = runner.invoke(args=["aiaccount", "rotate-keys"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Rotated 3 of 3 credentials (0 already on the newest key)"
    again = runner.invoke(args=["aiaccount", "rotate-keys"])
    assert again.output.strip() == "Rotated 0 of 3 credentials (3 already on the newest key)"

    app_ctx.config["AIACCOUNT_MASTER_KEYS"] = V2  # the old key is dropped
    db.session.expire_all()
    for n, blogger in enumerate(bloggers):
        credential = db.session.get(AiAccountCredential, blogger.credential.id)
        assert credential.key_version == "v2" and reveal(credential) == f"aia_rotate_key_{n}_abcd"
        assert (credential.nonce, credential.ciphertext) != before[credential.id]
    [entry] = db.session.scalars(select(AuditLog).where(AuditLog.action == "keys_rotated")).all()
    assert entry.actor_label == "cli" and "aia_rotate_key" not in entry.details
    assert '"rotated": 3' in entry.details


def test_rotate_keys_changes_nothing_when_one_credential_does_not_decrypt(app_ctx, runner, factories):
    good, orphan = factories.make_blogger(), factories.make_blogger()
    set_credential(good, "Good Co", "aia_good_key_0001", None)
    set_credential(orphan, "Orphan Co", "aia_orphan_key_0002", None)
    db.session.commit()
    orphan.credential.key_version = "v0"  # encrypted under a key nobody has any more
    db.session.commit()
    app_ctx.config["AIACCOUNT_MASTER_KEYS"] = f"{V2},{V1}"
    result = runner.invoke(args=["aiaccount", "rotate-keys"])
    assert result.exit_code == 1
    assert "Nothing changed: no key 'v0' in AIACCOUNT_MASTER_KEYS" in result.output
    db.session.expire_all()
    assert db.session.get(AiAccountCredential, good.credential.id).key_version == "v1"
    assert db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "keys_rotated")) == 0


# --- the API key never leaks ------------------------------------------------------------------


CANARY_COMPANY = "Canary Leak Check Sdn Bhd"


@pytest.fixture
def app_overrides(simulator):
    return {"AIACCOUNT_BASE_URL": simulator.url, "AIACCOUNT_TIMEOUT": 3, "AIACCOUNT_MAX_RETRIES": 0}


def _redis_values(conn) -> list[bytes]:
    """Every key, field and value in the Redis database, plus each value zlib-decompressed
    (RQ compresses job data, exc_info and results)."""
    chunks: list[bytes] = []
    for key in conn.scan_iter(count=1000):
        chunks.append(key)
        kind = conn.type(key)
        if kind == b"string":
            chunks.append(conn.get(key))
        elif kind == b"hash":
            for field, value in conn.hgetall(key).items():
                chunks += [field, value]
        elif kind == b"list":
            chunks += conn.lrange(key, 0, -1)
        elif kind == b"set":
            chunks += list(conn.smembers(key))
        elif kind == b"zset":
            chunks += [member for member, _score in conn.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            for _id, fields in conn.xrange(key):
                for field, value in fields.items():
                    chunks += [field, value]
        chunks.append(conn.dump(key) or b"")
    expanded = []
    for chunk in chunks:
        expanded.append(chunk)
        for decoded in (chunk, _b64(chunk)):
            try:
                expanded.append(zlib.decompress(decoded))
            except zlib.error:
                pass
        expanded.append(_b64(chunk))
    return expanded


def _b64(chunk: bytes) -> bytes:
    """RQ stores results as base64 pickles."""
    try:
        return base64.b64decode(chunk, validate=True)
    except ValueError:
        return b""


def _database_bytes(app) -> bytes:
    """The database as stored: for SQLite the file and its WAL/journal; on any database, every row."""
    parts = []
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite" and url.database:
        for suffix in ("", "-wal", "-journal"):
            path = Path(url.database + suffix)
            if path.exists():
                parts.append(path.read_bytes())
    with app.app_context():
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(table.select()):
                parts.append(repr(tuple(row)).encode())
                parts += [value for value in row if isinstance(value, bytes)]
    return b"\n".join(parts)


def _forms_of(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, raw[:-4], raw.hex().encode(), base64.b64encode(raw), secret.encode("utf-16-le")]


def _drain(app, redis_conn, snapshots: list[bytes], rounds: int = 8) -> None:
    """Work the queue; move retries RQ scheduled for later back onto it at once, until none is left.
    Redis is read after every pass (a retried attempt's state is gone by the end)."""
    for _ in range(rounds):
        with app.app_context():
            queue = get_queue()
            SimpleWorker([queue], connection=redis_conn).work(burst=True)
            snapshots += _redis_values(redis_conn)
            registry = queue.scheduled_job_registry
            waiting = registry.get_job_ids()
            if not waiting:
                return
            for job_id in waiting:
                registry.remove(job_id)
                queue.enqueue_job(Job.fetch(job_id, connection=redis_conn))
    raise AssertionError("retries did not end")


def _crash(*_args, **_kwargs):
    raise RuntimeError("injected failure after the key was decrypted")


def test_the_api_key_never_leaves_the_worker_and_the_admin_post(app, factories, sim, redis_conn, caplog, capfd,
                                                                 monkeypatch):
    canary = "aia_canary_" + secrets.token_hex(12)
    sim.put_company({"name": CANARY_COMPANY, "api_key": canary})
    caplog.set_level(logging.DEBUG)
    with app.app_context():
        admin = factories.make_admin()
        blogger = factories.make_blogger("canary@test.example")
        for hour in (9, 10):
            factories.make_sale(blogger, myt(DAY, hour), [("2", "5.50", "0")])
        db.session.commit()
        blogger_id, admin_email, blogger_email = blogger.id, admin.email, blogger.user.email

    # The admin's one POST: encrypted, tested live, never shown again.
    admin_client = app.test_client()
    login(admin_client, admin_email)
    posted = admin_client.post(f"/admin/aiaccount/bloggers/{blogger_id}/credential",
                               data={"api_key": f"  {canary} ", "company_name": CANARY_COMPANY})
    assert posted.status_code == 302
    landing = admin_client.get(posted.headers["Location"])
    assert f"Connected to {CANARY_COMPANY}" in landing.text
    session = app.session_interface.get_signing_serializer(app).loads(admin_client.get_cookie("session").value)
    assert canary not in repr(session)

    # A real push through the queue, then a push that fails until RQ's retries run out.
    client = app.test_client()
    login(client, blogger_email)
    redis_values: list[bytes] = []
    assert client.post("/finance/aiaccount-sync/pos_invoice/sync", data=RANGE).status_code == 303
    _drain(app, redis_conn, redis_values)
    sim.fault(CANARY_COMPANY, "server_error", count=10)
    assert client.post("/finance/aiaccount-sync/pos_invoice/sync", data=RANGE).status_code == 303
    _drain(app, redis_conn, redis_values)
    sim.control("DELETE", "faults")
    # A crash after the key was decrypted, in a job RQ gives up on: RQ keeps its traceback in Redis.
    monkeypatch.setattr("portal.jobs.remember_master_data", _crash)
    with app.app_context():
        run, _created = request_sync(db.session.get(Blogger, blogger_id), "pos_invoice", DAY, DAY, enqueue=False)
        get_queue().enqueue(run_sync, run.id, job_id=f"sync-run-{run.id}")  # no Retry
    _drain(app, redis_conn, redis_values)
    monkeypatch.undo()
    with app.app_context():
        ok_run, failed_run, crashed_run = db.session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
        assert (ok_run.status, ok_run.created_count) == ("succeeded", 2), ok_run.error_message
        assert (failed_run.status, failed_run.error_code, failed_run.attempts) == ("failed", "server_error", 4)
        assert (crashed_run.status, crashed_run.error_code) == ("failed", "internal_error")
        runs = (ok_run.id, failed_run.id, crashed_run.id)
        job = Job.fetch(f"sync-run-{failed_run.id}", connection=redis_conn)
        assert job.args == (failed_run.id,) and job.kwargs == {}  # ids only
        crashed = Job.fetch(f"sync-run-{crashed_run.id}", connection=redis_conn)
        assert crashed.get_status() == "failed" and "injected failure" in crashed.latest_result().exc_string
    assert len(sim.documents(CANARY_COMPANY, "sales-invoice")) == 2  # the key was really used

    # Every page either role can GET (pills, run pages, previews, downloads included).
    world = World(admin_email, blogger_email, blogger_email, blogger_id, blogger_id, runs[1], runs[1])
    pages = []
    for who, browser in (("admin", admin_client), ("blogger", client)):
        for rule, method in routes(app):
            if method == "GET":
                url = url_for_rule(rule, world)
                for headers in ({}, HTMX):
                    response = browser.get(url, query_string=RANGE, headers=headers)
                    assert response.status_code < 500 or rule.endpoint == "health.healthz", (who, url)
                    pages.append(response.get_data() + repr(sorted(response.headers.items())).encode())
    for sync_type in ("pos_invoice", "pos_receipt", "kol_bill", "kol_payment"):
        for path in ("pill", "runs"):
            pages.append(client.get(f"/finance/aiaccount-sync/{sync_type}/{path}", headers=HTMX).get_data())
    for run_id in runs:
        page = client.get(f"/finance/aiaccount-sync/runs/{run_id}")
        assert page.status_code == 200
        pages.append(page.get_data())
    assert sum(b"Failed" in page for page in pages) >= 2

    redis_values += _redis_values(redis_conn)
    assert any(b"injected failure after the key was decrypted" in value for value in redis_values)  # exc text
    database = _database_bytes(app)
    with app.app_context():
        audit = [repr((e.action, e.details, e.actor_label)) for e in db.session.scalars(select(AuditLog))]
        assert {"credential_set", "sync_succeeded", "sync_failed"} <= {
            e.action for e in db.session.scalars(select(AuditLog))}
    captured = capfd.readouterr()
    logs = "\n".join([caplog.text, captured.out, captured.err,
                      *(repr(r.args) for r in caplog.records), *(str(r.exc_info) for r in caplog.records)])
    assert "AiAccount POST /imports/sales-invoice -> 500" in logs  # DEBUG logging was on and captured

    places = {"database": [database], "redis": redis_values, "logs": [logs.encode()], "pages": pages,
              "audit log": [a.encode() for a in audit]}
    for form in _forms_of(canary):
        leaks = [where for where, blobs in places.items() if any(form in blob for blob in blobs)]
        assert not leaks, f"the API key (as {form[:12]!r}…) leaked into {leaks}"


# --- sessions, cookies, throttling ------------------------------------------------------------


def _production_app(database_url: str):
    config = type("ProductionTestConfig", (ProductionConfig,), {
        "SQLALCHEMY_DATABASE_URI": database_url, "SECRET_KEY": GOOD_SECRET, "TESTING": True,
        "AIACCOUNT_MASTER_KEYS": V1, "REDIS_URL": TestConfig.REDIS_URL, "RQ_QUEUE": TestConfig.RQ_QUEUE,
        "WTF_CSRF_ENABLED": False})
    return create_app(config)


def test_session_cookie_is_httponly_lax_and_secure_outside_development(app, factories, _schema):
    with app.app_context():
        email = factories.make_blogger().user.email
        db.session.commit()
    dev_cookie = app.test_client().post("/login", data={"email": email, "password": PASSWORD}).headers["Set-Cookie"]
    assert "HttpOnly" in dev_cookie and "SameSite=Lax" in dev_cookie and "Secure" not in dev_cookie
    production = _production_app(_schema)
    response = production.test_client().post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_login_starts_a_new_session(app, factories):
    with app.app_context():
        admin = factories.make_admin()
        email = factories.make_blogger().user.email
        db.session.commit()
        forged = f"{admin.id}:{'0' * 32}"
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as planted:  # what an attacker could have set up before login
        planted["planted"] = "by-attacker"
        planted["_user_id"] = forged
        planted["csrf_token"] = "attacker-known-token"
    before = client.get_cookie("session").value
    assert client.get("/admin/aiaccount/").status_code == 302  # a forged id without the token: anonymous
    login(client, email)
    after = client.get_cookie("session").value
    assert after != before
    with client.session_transaction() as fresh:
        assert "planted" not in fresh and fresh.get("csrf_token") != "attacker-known-token"
        assert fresh["_user_id"] != forged and fresh["_user_id"].split(":")[0] != forged.split(":")[0]
    assert client.get("/finance/aiaccount-sync/").status_code == 200


def test_logout_and_password_change_refuse_a_replayed_cookie(app, factories):
    with app.app_context():
        email = factories.make_blogger().user.email
        db.session.commit()
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, email)
    login(phone, email)
    old_laptop = laptop.get_cookie("session").value
    changed = laptop.post("/account/password", data={"current_password": PASSWORD, "new_password": "new-secret-456"})
    assert changed.status_code == 302
    assert laptop.get("/finance/aiaccount-sync/").status_code == 200  # this browser stays signed in
    assert phone.get("/finance/aiaccount-sync/").status_code == 302  # every other session is gone
    replay = app.test_client()
    replay.set_cookie("session", old_laptop)
    assert replay.get("/finance/aiaccount-sync/").status_code == 302

    current = laptop.get_cookie("session").value
    assert laptop.post("/logout").status_code == 302
    replay.set_cookie("session", current)
    assert replay.get("/finance/aiaccount-sync/").status_code == 302


def client_from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _fail_login(client, email):
    return client.post("/login", data={"email": email, "password": "wrong-password"})


def test_login_is_throttled_per_account_with_a_clear_message(app, factories):
    with app.app_context():
        email = factories.make_blogger().user.email
        db.session.commit()
    for n in range(5):  # five failures from five addresses
        attacker = client_from(app, f"10.0.0.{n + 1}")
        assert _fail_login(attacker, email).status_code == 401
    fresh_ip = client_from(app, "10.9.9.9")
    refused = fresh_ip.post("/login", data={"email": email, "password": PASSWORD})  # even the right password
    assert refused.status_code == 429
    assert "Too many failed logins. Wait 15 minutes and try again." in refused.text
    assert fresh_ip.get("/finance/aiaccount-sync/").status_code == 302

    with app.app_context():  # the window passes
        db.session.execute(update(LoginAttempt).values(created_at=datetime.now(timezone.utc) - timedelta(minutes=16)))
        db.session.commit()
    assert fresh_ip.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginAttempt.id))) == 0  # success clears; old ones pruned


def test_login_is_throttled_per_ip(app, factories):
    with app.app_context():
        email = factories.make_blogger().user.email
        db.session.commit()
    robot = client_from(app, "203.0.113.7")
    for n in range(5):  # five different accounts (most do not exist) from one address
        assert _fail_login(robot, f"guess{n}@test.example").status_code == 401
    refused = robot.post("/login", data={"email": email, "password": PASSWORD})
    assert refused.status_code == 429 and "Too many failed logins" in refused.text
    elsewhere = client_from(app, "198.51.100.1")
    assert elsewhere.post("/login", data={"email": email, "password": PASSWORD}).status_code == 302


def test_proxy_fix_counts_the_client_address_behind_one_proxy(app, _schema):
    from tests.conftest import _make_app

    app = _make_app(_schema, {"PROXY_FIX_X_FOR": 1})
    client = client_from(app, "127.0.0.1")
    client.post("/login", data={"email": "nobody@test.example", "password": "x"},
                headers={"X-Forwarded-For": "192.0.2.55"})
    with app.app_context():
        assert db.session.scalar(select(LoginAttempt.ip)) == "192.0.2.55"


# --- redirects --------------------------------------------------------------------------------


EVIL_NEXT = ["//evil.example", "\\\\evil.example", "/\\evil.example", "\t//evil.example", "https://evil.example",
             "http:evil.example", "javascript:alert(1)", " //evil.example", "/\t/evil.example", "///evil.example",
             "%2F%2Fevil.example", "\\/evil.example", "/%0d%0aSet-Cookie:x=1", "//evil.example/%2e%2e",
             "https:/evil.example", "ht\ttps://evil.example", "\u3000//evil.example", "evil.example"]


def _local(location: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    return (not parts.scheme and not parts.netloc and location.startswith("/") and not location.startswith("//")
            and "\\" not in location and not any(ord(ch) < 32 for ch in location))


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_next_after_login_and_language_always_lands_on_a_local_path(app, factories, target):
    with app.app_context():
        email = factories.make_blogger().user.email
        db.session.commit()
    client = app.test_client()
    response = client.post("/login", query_string={"next": target}, data={"email": email, "password": PASSWORD})
    assert response.status_code == 302 and _local(response.headers["Location"]), response.headers["Location"]
    language = client.post("/language/zh", data={"next": target})
    assert language.status_code == 302 and _local(language.headers["Location"]), language.headers["Location"]


def test_a_local_next_is_kept(app, factories):
    with app.app_context():
        email = factories.make_blogger().user.email
        db.session.commit()
    response = app.test_client().post("/login", query_string={"next": "/finance/aiaccount-sync/?start=2026-05-01"},
                                      data={"email": email, "password": PASSWORD})
    assert response.headers["Location"] == "/finance/aiaccount-sync/?start=2026-05-01"


# --- headers, CSP, htmx -----------------------------------------------------------------------


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"<style", re.I), "<style> element"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "on* handler"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
    (re.compile(r"\bhx-on|hx-vars|hx-vals\s*=\s*['\"]js:", re.I), "htmx eval attribute"),
]


def test_csp_without_unsafe_inline_and_the_other_headers(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert csp == CSP and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # only with Secure cookies (HTTPS)


def test_every_page_works_under_the_csp_and_htmx_cannot_eval(app, factories):
    from tests.test_authz_matrix import make_world

    world = make_world(app, factories)
    seen = 0
    for role in ("admin", "blogger_a"):
        client = app.test_client()
        login(client, world.email(role))
        for rule, method in routes(app):
            if method != "GET" or rule.endpoint in ("static", "health.healthz"):
                continue
            response = client.get(url_for_rule(rule, world), query_string=RANGE)
            if not response.mimetype.startswith("text/html"):
                continue
            seen += 1
            assert response.headers["Content-Security-Policy"] == CSP
            for pattern, what in INLINE:
                assert not pattern.search(response.text), f"{what} on {rule.rule} ({role})"
            if response.status_code == 200 and "<html" in response.text:
                assert ('"allowEval": false' in response.text and '"includeIndicatorStyles": false' in response.text
                        and '"allowScriptTags": false' in response.text), rule.rule
    assert seen >= 8
    admin = app.test_client()
    login(admin, world.admin_email)
    for path in (f"/admin/aiaccount/bloggers/{world.a_blogger}",
                 f"/admin/aiaccount/bloggers/{world.a_blogger}/credential/delete"):
        assert re.search(r'<body[^>]*hx-history="false"', admin.get(path).text), path
    assert re.search(r'<body[^>]*hx-headers=\'\{"X-CSRFToken": "[^"]+"\}\'', admin.get("/admin/aiaccount/").text)


def test_static_htmx_is_local_and_honours_the_meta_config():
    htmx = (ROOT / "static" / "js" / "htmx.min.js").read_text()
    assert "includeIndicatorStyles!==false" in htmx.replace(" ", "")  # the style tag is skipped when false
    for script in (ROOT / "static" / "js").glob("*.js"):
        if script.name != "htmx.min.js":
            body = script.read_text()
            assert "eval(" not in body and "innerHTML" not in body and "new Function" not in body, script.name


# --- CSRF -------------------------------------------------------------------------------------


def test_every_post_route_needs_the_csrf_token(app, _schema, factories):
    from tests.conftest import _make_app
    from tests.test_authz_matrix import make_world

    app = _make_app(_schema, {"WTF_CSRF_ENABLED": True})  # the same (emptied) database, CSRF on
    world = make_world(app, factories)
    client = app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"email": world.a_email, "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    page = client.get("/finance/aiaccount-sync/").text
    header_token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", page).group(1)
    posts = [(rule, method) for rule, method in routes(app) if method not in ("GET",)]
    assert len(posts) >= 8
    for rule, method in posts:
        url = url_for_rule(rule, world)
        refused = client.open(url, method=method, data=RANGE)
        assert refused.status_code == 400 and b"CSRF token" in refused.get_data(), (method, rule.rule)
        forged = client.open(url, method=method, data=RANGE, headers={"X-CSRFToken": "forged"})
        assert forged.status_code == 400 and b"CSRF token" in forged.get_data(), (method, rule.rule)
    for rule, method in posts:
        if rule.endpoint == "auth.logout":
            continue
        accepted = client.open(url_for_rule(rule, world), method=method, data=RANGE,
                               headers={**HTMX, "X-CSRFToken": header_token})
        assert b"CSRF token" not in accepted.get_data() and accepted.status_code < 500, (
            method, rule.rule, accepted.status_code)
    assert client.post("/logout", headers={"X-CSRFToken": header_token}).status_code == 302


# --- password hashes --------------------------------------------------------------------------


def test_stored_password_hash_is_argon2id_at_or_above_owasp(app, factories):
    with app.app_context():
        email = factories.make_blogger().user.email
        db.session.commit()
    client = app.test_client()
    login(client, email)
    assert client.post("/account/password", data={"current_password": PASSWORD,
                                                   "new_password": "a-new-password-1"}).status_code == 302
    with app.app_context():
        stored = db.session.scalar(select(User.password_hash).where(User.email == email))
    params = extract_parameters(stored)
    assert params.type is Type.ID
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2 and params.parallelism >= 1
    assert params.salt_len >= 16 and params.hash_len >= 32
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert "a-new-password-1" not in stored


def test_a_weaker_hash_is_upgraded_at_the_next_login(app, factories):
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with app.app_context():
        user = factories.make_blogger().user
        user.password_hash = weak
        db.session.commit()
        email = user.email
    login(app.test_client(), email)
    with app.app_context():
        stored = db.session.scalar(select(User.password_hash).where(User.email == email))
    assert stored != weak and extract_parameters(stored).memory_cost == 19 * 1024


def test_nul_characters_and_out_of_range_ids_are_clean_4xx(app, factories):
    from tests.test_authz_matrix import make_world

    world = make_world(app, factories)
    admin = app.test_client()
    login(admin, world.admin_email)
    assert admin.get("/admin/aiaccount/", query_string={"q": "a\x00b"}).status_code == 400
    posted = admin.post(f"/admin/aiaccount/bloggers/{world.a_blogger}/credential",
                        data={"api_key": "aia_x", "company_name": "Evil\x00Co"})
    assert posted.status_code == 400 and "NUL" in posted.text
    assert admin.get(f"/admin/aiaccount/bloggers/{2**31}").status_code == 404
    assert admin.get("/admin/aiaccount/bloggers/99999999999999999999999").status_code == 404
    assert app.test_client().post("/login", data={"email": "a\x00@b.c", "password": "x"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginAttempt.id))) == 0
        assert db.session.execute(text("SELECT 1")).scalar() == 1
