"""The sync engine end to end: real Redis queue, RQ SimpleWorker, the simulator over HTTP."""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal.credentials import set_credential
from portal.extensions import db
from portal.jobs import execute_run
from portal.models import AuditLog, SyncRun
from portal.queue import get_queue
from portal.syncs import SyncRequestError, request_sync
from portal.timeutil import myt_at
from tests.factories import run_queue
from tests.plugin_simulator import HEALTHY, NO_SGD, NO_SST

DAY = date(2026, 5, 14)


@pytest.fixture
def app_overrides(simulator):
    return {"AIACCOUNT_BASE_URL": simulator.url, "AIACCOUNT_TIMEOUT": 3, "AIACCOUNT_MAX_RETRIES": 1}


myt = myt_at  # a MYT wall-clock time as UTC


def connected_blogger(factories, company=HEALTHY, **kw):
    return factories.make_connected_blogger(company, **kw)


work = run_queue


def sync(blogger, sync_type, start=DAY, end=DAY):
    run, created = request_sync(blogger, sync_type, start, end)
    assert created, (run.status, run.error_code, run.error_message, run.attempts)
    return run.id


def test_pos_invoice_then_receipt_push_through_the_queue(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories, sst_rate="10")
    # Per-line tax: 0.505 → 0.51 twice = 1.02 (not 1.01 on the sum); total 11.12, cash rounds to 11.10.
    factories.make_sale(blogger, myt(DAY, 23, 30), [("1", "5.55", "0.50"), ("1", "5.05", "0")],
                        payments=[{"method": "cash", "amount": "11.10", "amount_received": "20.00",
                                   "change_amount": "8.90"}])
    factories.make_sale(blogger, myt(DAY, 10), [("1", "100.00", "0")],
                        payments=[{"method": "tng", "amount": "60.00", "reference_no": "TNG1"},
                                  {"method": "card", "amount": "50.00", "reference_no": "C1"}])
    factories.make_sale(blogger, myt(DAY + timedelta(days=1), 0, 5))  # the 15th: out of range
    db.session.commit()

    run_id = sync(blogger, "pos_invoice")
    assert db.session.get(SyncRun, run_id).status == "queued"
    work(redis_conn)
    run = db.session.get(SyncRun, run_id)
    assert run.status == "succeeded", run.error_message
    assert (run.row_count, run.created_count, run.skipped_count) == (2, 2, 0)
    assert str(run.total_amount) == "121.12"
    invoices = sim.documents(HEALTHY, "sales-invoice")
    assert sorted(d["total"] for d in invoices) == ["11.12", "110.00"]

    receipt_id = sync(blogger, "pos_receipt")
    work(redis_conn)
    receipt = db.session.get(SyncRun, receipt_id)
    assert receipt.status == "succeeded", receipt.error_message
    receipts = {d["number"]: d for d in sim.documents(HEALTHY, "sales-receipt")}
    assert set(receipts) == {f"RCPT-{n}" for n in _receipt_numbers(blogger)}
    assert all(d["copies"] == 1 for d in receipts.values())
    assert sorted(d["total"] for d in receipts.values()) == ["11.12", "110.00"]  # cash 11.10 + rounding 0.02
    audit = db.session.scalars(select(AuditLog).where(AuditLog.entity_type == "aiaccount_push")).all()
    assert [a.action for a in audit] == ["sync_succeeded", "sync_succeeded"]


def _receipt_numbers(blogger):
    from portal.models import PosTransaction

    return [t.receipt_no for t in db.session.scalars(select(PosTransaction).where(
        PosTransaction.blogger_id == blogger.id, PosTransaction.created_at < myt(DAY + timedelta(days=1), 0)))]


def test_repush_reports_every_row_as_skipped(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories)
    for hour in (9, 10, 11):
        factories.make_sale(blogger, myt(DAY, hour))
    db.session.commit()
    first = sync(blogger, "pos_invoice")
    work(redis_conn)
    second = sync(blogger, "pos_invoice")
    work(redis_conn)
    run = db.session.get(SyncRun, second)
    assert run.status == "succeeded"
    assert (run.row_count, run.created_count, run.skipped_count) == (3, 0, 3)
    assert len(sim.documents(HEALTHY, "sales-invoice")) == 3
    assert db.session.get(SyncRun, first).created_count == 3


def test_missing_tax_code_fails_red_with_fix_without_uploading(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories, NO_SST, sst_rate="10")
    factories.make_sale(blogger, myt(DAY, 12))
    db.session.commit()
    run_id = sync(blogger, "pos_invoice")
    work(redis_conn)
    run = db.session.get(SyncRun, run_id)
    assert run.status == "failed"
    assert run.error_code == "tax_code_missing"
    assert "MY-SALES10" in run.error_hint and "Tax Codes" in run.error_hint
    assert not [r for r in sim.requests_log() if r["path"].startswith("/api/v1/imports")]


def test_currency_not_enabled_is_caught_by_preflight(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories, NO_SGD, currency="SGD")
    factories.make_sale(blogger, myt(DAY, 12))
    db.session.commit()
    run_id = sync(blogger, "pos_invoice")
    work(redis_conn)
    run = db.session.get(SyncRun, run_id)
    assert (run.status, run.error_code) == ("failed", "currency_not_enabled")
    assert "SGD" in run.error_hint


def test_no_data_is_not_a_failure(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories)
    run_id = sync(blogger, "kol_payment")
    work(redis_conn)
    assert db.session.get(SyncRun, run_id).status == "no_data"


def test_second_sync_while_queued_returns_the_same_run(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories)
    run, created = request_sync(blogger, "pos_invoice", DAY, DAY)
    again, created_again = request_sync(blogger, "pos_invoice", DAY, DAY)
    assert created and not created_again and again.id == run.id
    assert get_queue().count == 1
    job = get_queue().jobs[0]
    assert job.args == (run.id,) and job.kwargs == {}  # ids only, never a key


@pytest.mark.parametrize("start,end,code", [
    (DAY, DAY - timedelta(days=1), "reversed_dates"),
    (DAY - timedelta(days=400), DAY, "range_too_long"),
    (DAY, date.today() + timedelta(days=5), "future_dates"),
])
def test_bad_ranges_enqueue_nothing(app_ctx, factories, redis_conn, start, end, code):
    blogger = connected_blogger(factories)
    with pytest.raises(SyncRequestError) as info:
        request_sync(blogger, "pos_invoice", start, end)
    assert info.value.code == code
    assert get_queue().count == 0 and db.session.scalar(select(SyncRun)) is None


def test_unknown_type_and_missing_credentials_or_settings(app_ctx, factories, redis_conn):
    blogger = factories.make_blogger()
    with pytest.raises(SyncRequestError, match="not connected"):
        request_sync(blogger, "pos_invoice", DAY, DAY)
    connected = connected_blogger(factories, settings=False)
    with pytest.raises(SyncRequestError) as info:
        request_sync(connected, "pos_invoice", DAY, DAY)
    assert info.value.code == "settings_missing"
    with pytest.raises(SyncRequestError) as info:
        request_sync(connected, "orders", DAY, DAY)
    assert info.value.code == "unknown_type"
    assert get_queue().count == 0


def test_finished_run_is_never_pushed_again(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories)
    factories.make_sale(blogger, myt(DAY, 9))
    db.session.commit()
    run_id = sync(blogger, "pos_invoice")
    work(redis_conn)
    requests_before = len(sim.requests_log())
    assert execute_run(run_id) == "succeeded"  # e.g. RQ re-running an 'abandoned' job
    assert len(sim.requests_log()) == requests_before


def test_phase_timings_and_audit_details_are_recorded(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories)
    factories.make_sale(blogger, myt(DAY, 9))
    db.session.commit()
    run_id = sync(blogger, "pos_invoice")
    work(redis_conn)
    run = db.session.get(SyncRun, run_id)
    timings = json.loads(run.phase_timings)
    assert {"query", "build", "xlsx", "preflight", "upload", "total"} <= set(timings)
    entry = db.session.scalar(select(AuditLog).where(AuditLog.entity_type == "aiaccount_push"))
    details = json.loads(entry.details)
    assert details["created"] == 1 and details["type"] == "pos_invoice"
    assert HEALTHY.key not in entry.details


def test_sync_reads_only_own_source_tables_never_orders_or_platform_settlements(app_ctx, factories, sim,
                                                                                  redis_conn):
    from decimal import Decimal

    from sqlalchemy import event

    from portal.models import BloggerSettlement, Order

    blogger = connected_blogger(factories)
    other = connected_blogger(factories)
    factories.make_sale(blogger, myt(DAY, 9), receipt_no="POS2026051400001")
    factories.make_sale(other, myt(DAY, 9), receipt_no="POS2026051400001")  # same number, other blogger
    kol = factories.make_kol(blogger)
    factories.make_settlement(kol, "2026-04", "500.00", DAY, paid_at=myt(DAY, 16))
    db.session.add_all([Order(blogger_id=blogger.id, order_no="EC1", total=Decimal("99.00"), created_at=myt(DAY, 9)),
                        BloggerSettlement(blogger_id=blogger.id, period="2026-04", amount=Decimal("12.00"))])
    db.session.commit()
    statements = []
    listener = lambda conn, cursor, statement, *a: statements.append(statement.lower())  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        for sync_type in ("pos_invoice", "pos_receipt", "kol_bill", "kol_payment"):
            sync(blogger, sync_type)
            work(redis_conn)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    runs = db.session.scalars(select(SyncRun).order_by(SyncRun.id)).all()
    assert [(r.status, r.created_count) for r in runs] == [("succeeded", 1)] * 4
    assert statements and not [s for s in statements if "orders" in s or "blogger_settlements" in s]
    docs = sim.documents(HEALTHY)
    assert {d["kind"] for d in docs} == {"sales-invoice", "sales-receipt", "expense-bill", "expense-payment"}
    assert len(docs) == 4  # the other blogger's sale (same receipt number) was not pushed


def test_sale_at_2330_myt_on_the_14th_is_counted_on_the_14th(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories)
    factories.make_sale(blogger, myt(DAY, 23, 30))          # 15:30 UTC on the 14th
    factories.make_sale(blogger, myt(DAY - timedelta(days=1), 23, 59))  # the 13th
    db.session.commit()
    run_id = sync(blogger, "pos_invoice")
    work(redis_conn)
    assert db.session.get(SyncRun, run_id).row_count == 1
    [doc] = sim.documents(HEALTHY, "sales-invoice")
    assert doc["date"] == DAY.isoformat()


@pytest.mark.parametrize("company_key,setup,code,fix_words", [
    ("LOCKED", None, "period_locked", "Lock Date"),
    ("NEW_CO", None, "before_incorporation", "incorporation date"),
    ("READ_ONLY", None, "write_permission_denied", "write permission"),
    ("HEALTHY", "account", "account_missing", "49999"),
    ("HEALTHY", "bad_key", "invalid_api_key", "super admin"),
    ("HEALTHY", "wrong_company", "company_mismatch", "super admin"),
])
def test_every_failure_ends_red_with_its_fix(app_ctx, factories, sim, redis_conn, company_key, setup, code,
                                             fix_words):
    import tests.plugin_simulator as companies
    from portal.timeutil import myt_today

    company = getattr(companies, company_key)
    blogger = factories.make_blogger()
    key, name = company.key, company.name
    if setup == "bad_key":
        key = "aia_not_a_real_key_0000"
    elif setup == "wrong_company":
        name = companies.NO_SGD.name
    set_credential(blogger, name, key, actor=None)
    if setup == "account":
        blogger.settings.sales_account = "49999"
    # LOCKED is locked until the end of the month before last (DAY is long before that);
    # NEW_CO was incorporated on the 1st of this month, so last month's last day comes before it.
    day = myt_today().replace(day=1) - timedelta(days=1) if company_key == "NEW_CO" else DAY
    factories.make_sale(blogger, myt(day, 12))
    db.session.commit()
    run, _created = request_sync(blogger, "pos_invoice", day, day)
    work(redis_conn)
    run = db.session.get(SyncRun, run.id)
    assert (run.status, run.error_code) == ("failed", code), run.error_message
    assert fix_words in run.error_hint
    assert not [d for d in sim.documents(company)]


def test_trial_quota_is_checked_before_uploading(app_ctx, factories, sim, redis_conn):
    from tests.plugin_simulator import TRIAL

    blogger = connected_blogger(factories, TRIAL)
    for minute in range(6):  # 95 of 100 used: six documents do not fit
        factories.make_sale(blogger, myt(DAY, 10, minute))
    db.session.commit()
    run_id = sync(blogger, "pos_invoice")
    work(redis_conn)
    run = db.session.get(SyncRun, run_id)
    assert (run.status, run.error_code) == ("failed", "quota_exceeded")
    assert "Upgrade your AiAccount plan" in run.error_hint
    assert not [r for r in sim.requests_log() if r["path"].startswith("/api/v1/imports")]


def test_a_changed_settlement_is_reported_as_changed(app_ctx, factories, sim, redis_conn):
    from decimal import Decimal

    blogger = connected_blogger(factories)
    kol = factories.make_kol(blogger)
    settlement = factories.make_settlement(kol, "2026-04", "1000.00", DAY)
    db.session.commit()
    sync(blogger, "kol_bill")
    work(redis_conn)
    settlement.commission = Decimal("150.00")  # corrected in NS16 after it was pushed
    db.session.commit()
    run_id = sync(blogger, "kol_bill")
    work(redis_conn)
    run = db.session.get(SyncRun, run_id)
    assert (run.status, run.created_count, run.skipped_count, run.changed_count) == ("succeeded", 0, 0, 1)
    [doc] = sim.documents(HEALTHY, "expense-bill")
    assert doc["total"] == "100.00" and doc["copies"] == 1  # AiAccount kept the first version


def _job_statements(redis_conn, blogger, sync_type: str) -> list[str]:
    """The SQL statements one sync job runs, from the enqueue to its end."""
    from sqlalchemy import event

    run_id = sync(blogger, sync_type)
    statements: list[str] = []
    listener = lambda conn, cursor, statement, *a: statements.append(statement.lower())  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        work(redis_conn)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    run = db.session.get(SyncRun, run_id)
    assert (run.status, run.error_message) == ("succeeded", None)
    return statements


def _heartbeats(statements: list[str]) -> int:
    return sum(1 for s in statements if s.startswith("update sync_runs") and "heartbeat_at" in s)


def test_statement_count_does_not_grow_with_the_number_of_chunks(app_ctx, factories, sim, redis_conn):
    app_ctx.config["SYNC_CHUNK_DOCUMENTS"] = 2
    small, large = connected_blogger(factories), connected_blogger(factories)
    for hour in (9, 10):
        factories.make_sale(small, myt(DAY, hour))
    for hour in range(8, 20):
        factories.make_sale(large, myt(DAY, hour))
    db.session.commit()
    one_chunk = _job_statements(redis_conn, small, "pos_invoice")
    six_chunks = _job_statements(redis_conn, large, "pos_invoice")
    assert len(sim.documents(HEALTHY, "sales-invoice")) == 14
    assert len(six_chunks) == len(one_chunk)  # the heartbeat is timed, not written per chunk
    assert _heartbeats(six_chunks) == _heartbeats(one_chunk) == 2  # the claim, the end of the build


def test_a_due_heartbeat_is_written_while_rows_stream_and_while_uploading(app_ctx, factories, sim, redis_conn):
    # SYNC_STALE_SECONDS=0: a heartbeat is due at every chunk built and every chunk answered. While
    # rows stream it goes through a connection of its own (PostgreSQL's server-side cursor survives).
    app_ctx.config.update(SYNC_CHUNK_DOCUMENTS=2, SYNC_STALE_SECONDS=0)
    blogger = connected_blogger(factories)
    for hour in range(8, 14):
        factories.make_sale(blogger, myt(DAY, hour))
    db.session.commit()
    statements = _job_statements(redis_conn, blogger, "pos_invoice")
    assert _heartbeats(statements) == 2 + 3 + 3  # the claim and the end of the build; 3 chunks built, 3 answered
    assert len(sim.documents(HEALTHY, "sales-invoice")) == 6


def test_a_run_over_two_currencies_records_no_mixed_total(app_ctx, factories, sim, redis_conn):
    from decimal import Decimal

    from portal.models import Store

    blogger = connected_blogger(factories)
    singapore = Store(name="Orchard pop-up", currency="SGD", sst_rate=Decimal("0"))
    blogger.stores.append(singapore)
    factories.make_sale(blogger, myt(DAY, 9), [("1", "10.00", "0")])
    factories.make_sale(blogger, myt(DAY, 10), [("1", "4.00", "0")], store=singapore)
    db.session.commit()
    run_id = sync(blogger, "pos_invoice")
    work(redis_conn)
    run = db.session.get(SyncRun, run_id)
    assert (run.status, run.row_count, run.total_amount) == ("succeeded", 2, None)  # never RM 14.00
    assert {d["currency"] for d in sim.documents(HEALTHY, "sales-invoice")} == {"MYR", "SGD"}


def test_a_run_claimed_again_counts_only_its_final_pass(app_ctx, factories, sim, redis_conn):
    """An attempt killed after AiAccount answered a chunk leaves that chunk's counts on the run;
    when the run is claimed again (its heartbeat went stale) every chunk is sent again under the same
    keys and counted again, so the counts start from zero: created + skipped = documents."""
    from datetime import datetime, timezone

    app_ctx.config["SYNC_CHUNK_DOCUMENTS"] = 2
    blogger = connected_blogger(factories)
    for hour in range(8, 13):
        factories.make_sale(blogger, myt(DAY, hour))
    db.session.commit()
    run_id = sync(blogger, "pos_invoice")
    run = db.session.get(SyncRun, run_id)
    # What a worker killed mid-push leaves behind: running, a stale heartbeat, chunk 1 counted.
    run.status, run.heartbeat_at, run.attempts = "running", datetime(2020, 1, 1, tzinfo=timezone.utc), 1
    run.created_count, run.import_id = 2, "imp_from_the_dead_attempt"
    db.session.commit()
    work(redis_conn)  # the job is still queued: it claims the stale run and pushes it again
    db.session.expire_all()
    run = db.session.get(SyncRun, run_id)
    assert (run.status, run.attempts, run.row_count) == ("succeeded", 2, 5)
    assert (run.created_count, run.skipped_count, run.changed_count) == (5, 0, 0)
    assert run.import_id != "imp_from_the_dead_attempt"
    assert len(sim.documents(HEALTHY, "sales-invoice")) == 5
