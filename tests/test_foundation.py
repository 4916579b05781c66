"""The foundation: schema on both databases, auth and roles, error pages, health, seed, config."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from portal.extensions import db
from portal.models import Blogger, KolSettlement, Order, PosPayment, PosTransaction, SyncRun, User

ROOT = Path(__file__).resolve().parents[1]


def test_migrations_build_every_model_table(app_ctx):
    tables = set(inspect(db.engine).get_table_names())
    assert set(db.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_money_columns_read_back_as_decimal(app_ctx, factories):
    blogger = factories.make_blogger()
    factories.make_sale(blogger, _dt("2026-05-14 06:00"), [("3", "33.33", "0.01")])
    db.session.commit()
    db.session.expire_all()
    txn = db.session.scalar(select(PosTransaction))
    assert isinstance(txn.total, Decimal) and txn.total == Decimal("99.98")
    assert txn.created_at.tzinfo is not None  # stored UTC, read back aware


def test_one_active_run_per_blogger_and_type_is_a_database_rule(app_ctx, factories):
    from sqlalchemy.exc import IntegrityError

    blogger = factories.make_blogger()
    today = _dt("2026-05-14 06:00").date()
    db.session.add(SyncRun(blogger_id=blogger.id, sync_type="pos_invoice", start_date=today, end_date=today))
    db.session.commit()
    db.session.add(SyncRun(blogger_id=blogger.id, sync_type="pos_invoice", start_date=today, end_date=today))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(SyncRun(blogger_id=blogger.id, sync_type="pos_receipt", start_date=today, end_date=today))
    db.session.commit()  # another type is fine


@pytest.mark.parametrize("path", ["/finance/aiaccount-sync/", "/admin/aiaccount/"])
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_htmx_request_with_expired_session_redirects_whole_page(client):
    response = client.get("/finance/aiaccount-sync/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_blogger_gets_403_on_admin_pages(client, auth, app_ctx, factories):
    factories.make_blogger("b@test.example")
    db.session.commit()
    assert auth.login("b@test.example").status_code == 302
    response = client.get("/admin/aiaccount/")
    assert response.status_code == 403
    assert b"You do not have access" in response.data


def test_login_lands_on_role_home_and_logout_refuses_old_cookie(client, auth, app_ctx, factories):
    factories.make_admin("root@test.example")
    db.session.commit()
    response = auth.login("root@test.example")
    assert response.headers["Location"] == "/admin/aiaccount/"
    cookie = client.get_cookie("session").value
    assert client.get("/admin/aiaccount/").status_code == 200
    auth.logout()
    client.set_cookie("session", cookie)  # replay the cookie from before logout
    assert client.get("/admin/aiaccount/").status_code == 302


def test_bad_login_is_401_in_layout(client, app_ctx, factories):
    factories.make_blogger("b@test.example")
    db.session.commit()
    response = client.post("/login", data={"email": "b@test.example", "password": "wrong"})
    assert response.status_code == 401
    assert b"Wrong email or password" in response.data
    assert b"Traceback" not in response.data


def test_unknown_url_and_wrong_method_render_clean_pages(client):
    not_found = client.get("/no/such/page")
    assert not_found.status_code == 404 and b"Page not found" in not_found.data
    wrong_method = client.get("/logout")
    assert wrong_method.status_code == 405 and b"not allowed" in wrong_method.data


def test_csrf_failure_is_a_clean_400(app_overrides, _schema, redis_conn):
    from tests.conftest import _make_app

    app = _make_app(_schema, {"WTF_CSRF_ENABLED": True})
    response = app.test_client().post("/login", data={"email": "x@test.example", "password": "x"})
    assert response.status_code == 400
    assert b"CSRF" in response.data and b"Traceback" not in response.data


def test_healthz_reports_database_redis_and_worker(client):
    response = client.get("/healthz")
    body = response.get_json()
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"] == {"ok": True}
    assert body["checks"]["worker"]["count"] == 0  # no worker in this test
    assert body["checks"]["scheduler"]["ok"] is False and "--with-scheduler" in body["checks"]["scheduler"]["hint"]
    assert response.status_code == 503 and body["ok"] is False


def test_seed_demo_builds_the_shop_deterministically(runner, app_ctx):
    result = runner.invoke(args=["seed-demo", "--seed", "7", "--days", "20"])
    assert result.exit_code == 0, result.output
    assert "admin@demo.test" in result.output and "blogger2@demo.test" in result.output
    first = _fingerprint()
    assert runner.invoke(args=["seed-demo", "--seed", "7", "--days", "20"]).exit_code == 0
    assert _fingerprint() == first
    statuses = set(db.session.scalars(select(PosTransaction.status).distinct()))
    assert statuses == {"paid", "unpaid", "voided"}
    assert db.session.scalar(select(func.count()).where(PosTransaction.refund_of_id.is_not(None))) > 0
    methods = set(db.session.scalars(select(PosPayment.method).distinct()))
    assert {"cash", "card"} <= methods
    assert db.session.scalar(select(func.count()).select_from(Order)) > 0
    assert set(db.session.scalars(select(KolSettlement.status).distinct())) == {"generated", "paid"}
    bloggers = db.session.scalars(select(Blogger).order_by(Blogger.id)).all()
    assert [b.credential.company_name for b in bloggers] == ["Blogger One Trading", "Blogger Two Enterprise"]
    # every receipt number: POS + YYYYMMDD + 5 digits, unique per blogger
    numbers = db.session.scalars(select(PosTransaction.receipt_no)).all()
    assert all(len(n) == 16 and n.startswith("POS") and n[3:].isdigit() for n in numbers)


def test_seed_demo_transactions_gives_blogger_one_exactly_n(runner, app_ctx):
    result = runner.invoke(args=["seed-demo", "--transactions", "500", "--days", "10"])
    assert result.exit_code == 0, result.output
    blogger1 = db.session.scalar(select(Blogger).join(User).where(User.email == "blogger1@demo.test"))
    count = db.session.scalar(select(func.count()).where(PosTransaction.blogger_id == blogger1.id))
    assert count == 500


def test_bad_database_url_is_one_clear_line():
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, capture_output=True, text=True,
                            env={"DATABASE_URL": "not a url", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Configuration error: DATABASE_URL is not a database URL (expected e.g. "
        "sqlite:///instance/portal.sqlite or postgresql+psycopg://user@host/db)"]


def test_unreachable_redis_is_one_clear_line(runner, app_ctx, monkeypatch):
    app_ctx.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app_ctx.extensions.pop("redis", None)
    result = runner.invoke(args=["check-services"])
    assert result.exit_code == 1
    assert "REDIS_URL: no Redis answers at redis://127.0.0.1:1/0" in result.output


def _fingerprint():
    rows = db.session.execute(select(PosTransaction.receipt_no, PosTransaction.total, PosTransaction.status)
                              .order_by(PosTransaction.receipt_no)).all()
    return json.dumps([list(map(str, r)) for r in rows])


def _dt(text: str):
    from datetime import datetime, timezone

    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_error_pages_speak_the_users_language(client):
    client.post("/language/zh")
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "找不到页面" in response.get_data(as_text=True)
    assert b"The requested URL was not found" not in response.data  # werkzeug's English-only sentence
