"""Reconcile: NS16 source vs AiAccount per type and MYT day, on real data through the simulator.

Real database, real Redis (RQ SimpleWorker), the simulator over HTTP. A late sale, a changed
settlement, a never-pushed day and a failed day are each named; "Push what's missing" records one
run per type over the mismatched days, in auto-push order, in one job.
"""
from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import inspect, select

from portal.credentials import set_credential
from portal.extensions import db
from portal.models import ReconcileSnapshot, SyncRun
from portal.queue import get_queue
from portal.reconcile import push_missing, reconcile, request_fix, request_refresh
from portal.syncs import request_sync
from tests.factories import make_admin
from portal.timeutil import myt_at
from tests.factories import run_queue
from tests.plugin_simulator import HEALTHY, NO_SST

DAY = date(2026, 5, 14)
URL = "/finance/aiaccount-sync/reconcile/"


@pytest.fixture
def app_overrides(simulator):
    return {"AIACCOUNT_BASE_URL": simulator.url, "AIACCOUNT_TIMEOUT": 3, "AIACCOUNT_MAX_RETRIES": 1}


myt = myt_at  # a MYT wall-clock time as UTC


def connected_blogger(factories, company=HEALTHY, **kw):
    return factories.make_connected_blogger(company, **kw)


work = run_queue


def push(blogger, sync_type, start=DAY, end=DAY, redis_conn=None):
    run, created = request_sync(blogger, sync_type, start, end)
    assert created
    work(redis_conn)
    db.session.expire_all()
    return db.session.get(SyncRun, run.id)


def day_of(blogger, sync_type, day=DAY, start=None, end=None):
    result = reconcile(blogger.id, start or day, end or day)
    return next(d for d in result.types[sync_type].days if d.day == day)


def test_late_sale_is_named_arrived_after_the_push_and_fixed(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories)
    factories.make_sale(blogger, myt(DAY, 9), [("2", "10.00", "0")])
    factories.make_sale(blogger, myt(DAY, 23, 30), [("1", "5.50", "0")])  # still the 14th in MYT
    factories.make_sale(blogger, myt(DAY + timedelta(days=1), 0, 5))  # the 15th: another day
    db.session.commit()
    assert push(blogger, "pos_invoice", redis_conn=redis_conn).status == "succeeded"
    ok = day_of(blogger, "pos_invoice")
    assert (ok.status, ok.source_count, ok.source_total, ok.pushed_from) == ("ok", 2, Decimal("25.50"), "runs")

    # An offline POS sale of the 14th reaches NS16 after the push.
    factories.make_sale(blogger, myt(DAY, 15), [("1", "7.25", "0")])
    db.session.commit()
    late = day_of(blogger, "pos_invoice")
    assert late.status == "arrived_after"
    assert (late.source_count, late.source_total) == (3, Decimal("32.75"))
    assert (late.pushed_count, late.pushed_total, late.pushed_from) == (2, Decimal("25.50"), "runs")

    # What AiAccount itself holds, read by the worker (the web never decrypts the key).
    assert request_refresh(blogger, DAY, DAY)
    work(redis_conn)
    snapshot = db.session.scalar(select(ReconcileSnapshot).where(ReconcileSnapshot.sync_type == "pos_invoice"))
    assert (snapshot.documents, snapshot.total) == (2, Decimal("25.50"))
    from_book = day_of(blogger, "pos_invoice")
    assert (from_book.status, from_book.pushed_from, from_book.pushed_count) == ("arrived_after", "aiaccount", 2)
    receipts = day_of(blogger, "pos_receipt")
    assert (receipts.status, receipts.source_count, receipts.pushed_count) == ("never_pushed", 3, 0)

    # Push what's missing: invoices first, then receipts, in one job.
    result = reconcile(blogger.id, DAY, DAY)
    assert result.fix_ranges == [("pos_invoice", DAY, DAY), ("pos_receipt", DAY, DAY)]
    runs, busy = request_fix(blogger, result.fix_ranges)
    assert busy == [] and [r.sync_type for r in runs] == ["pos_invoice", "pos_receipt"]
    work(redis_conn)
    db.session.expire_all()
    invoice_run = db.session.get(SyncRun, runs[0].id)
    assert (invoice_run.status, invoice_run.created_count, invoice_run.skipped_count) == ("succeeded", 1, 2)
    assert db.session.get(SyncRun, runs[1].id).status == "succeeded"
    assert reconcile(blogger.id, DAY, DAY).mismatched == []
    request_refresh(blogger, DAY, DAY)
    work(redis_conn)
    book = day_of(blogger, "pos_invoice")
    assert (book.status, book.pushed_from, book.pushed_count, book.pushed_total) == ("ok", "aiaccount", 3, Decimal("32.75"))


def test_changed_settlement_is_named_changed_since_pushed(app_ctx, factories, sim, redis_conn):
    blogger = connected_blogger(factories)
    kol = factories.make_kol(blogger, rate="10.00")
    settlement = factories.make_settlement(kol, "2026-04", "1000.00", DAY)
    db.session.commit()
    assert push(blogger, "kol_bill", redis_conn=redis_conn).status == "succeeded"
    assert day_of(blogger, "kol_bill").status == "ok"

    settlement = db.session.get(type(settlement), settlement.id)
    settlement.product_sales, settlement.commission = Decimal("1500.00"), Decimal("150.00")
    db.session.commit()
    assert day_of(blogger, "kol_bill").status == "arrived_after"  # edited after the push

    repush = push(blogger, "kol_bill", redis_conn=redis_conn)
    assert (repush.status, repush.changed_count) == ("succeeded", 1)  # AiAccount kept the first version
    changed = day_of(blogger, "kol_bill")
    assert changed.status == "changed"
    assert reconcile(blogger.id, DAY, DAY).fix_ranges == []  # a re-push cannot fix it: AiAccount must

    request_refresh(blogger, DAY, DAY)
    work(redis_conn)
    book = day_of(blogger, "kol_bill")
    assert (book.status, book.pushed_from, book.pushed_count) == ("changed", "aiaccount", 1)
    assert (book.source_total, book.pushed_total, book.difference) == (
        Decimal("150.00"), Decimal("100.00"), Decimal("50.00"))


def test_failed_and_never_pushed_days_and_the_headline(app_ctx, factories, sim, redis_conn, client, auth):
    blogger = connected_blogger(factories, NO_SST, sst_rate="10")
    factories.make_sale(blogger, myt(DAY, 10), [("1", "100.00", "0")])  # 110.00 with SST
    factories.make_sale(blogger, myt(DAY + timedelta(days=1), 10), [("1", "20.00", "0")])  # 22.00
    db.session.commit()
    run = push(blogger, "pos_invoice", redis_conn=redis_conn)
    assert (run.status, run.error_code) == ("failed", "tax_code_missing")

    result = reconcile(blogger.id, DAY, DAY + timedelta(days=1))
    invoices = result.types["pos_invoice"]
    assert [d.status for d in invoices.days] == ["failed", "never_pushed"]
    assert (invoices.failed, invoices.missing) == (1, 1)
    assert invoices.days[0].run_id == run.id

    auth.login(blogger.user.email)
    page = client.get(URL, query_string={"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Source RM 132.00 · in AiAccount RM 0.00\n    · missing 1 · failed 1" in html
    assert "Push failed" in html and "Never pushed" in html
    assert 'id="push-missing"' in html and "POS Sales Invoice 2026-05-14 → 2026-05-15" in html


def test_push_whats_missing_enqueues_exactly_the_mismatched_ranges_in_order(
        app_ctx, factories, sim, redis_conn, client, auth):
    d1, d2, d3 = DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)
    blogger = connected_blogger(factories)
    for day in (d1, d2, d3):
        factories.make_sale(blogger, myt(day, 11))
    kol = factories.make_kol(blogger)
    factories.make_settlement(kol, "2026-04", "800.00", d2, paid_at=myt(d3, 11), reference="IBG1")
    db.session.commit()
    for sync_type in ("pos_invoice", "pos_receipt"):
        assert push(blogger, sync_type, d1, d3, redis_conn).status == "succeeded"
    factories.make_sale(blogger, myt(d1, 20))  # late sales on the 1st and 3rd day
    factories.make_sale(blogger, myt(d3, 20))
    db.session.commit()

    auth.login(blogger.user.email)
    answer = client.post(f"{URL}fix", data={"start": d1.isoformat(), "end": d3.isoformat()})
    assert answer.status_code == 303
    runs = db.session.scalars(select(SyncRun).where(SyncRun.trigger == "reconcile").order_by(SyncRun.id)).all()
    assert [(r.sync_type, r.start_date, r.end_date, r.status) for r in runs] == [
        ("pos_invoice", d1, d3, "queued"), ("pos_receipt", d1, d3, "queued"),
        ("kol_bill", d2, d2, "queued"), ("kol_payment", d3, d3, "queued")]
    jobs = get_queue().jobs
    assert len(jobs) == 1 and jobs[0].func is push_missing
    assert jobs[0].args == (blogger.id, [r.id for r in runs])  # ids only, in auto-push order
    assert {r.job_id for r in runs} == {jobs[0].id}

    page = client.get(URL, query_string={"start": d1.isoformat(), "end": d3.isoformat()}).get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in page and "Syncs under way" in page
    under_way = reconcile(blogger.id, d1, d3).types["pos_invoice"]
    assert {d.status for d in under_way.days} == {"in_progress", "ok"} and under_way.missing == 2  # until pushed
    assert client.post(f"{URL}fix", data={"start": d1.isoformat(), "end": d3.isoformat()}).status_code == 303
    assert get_queue().count == 1  # days under way are not pushed twice

    imports_before = len([r for r in sim.requests_log() if "/imports/" in r["path"]])
    work(redis_conn)
    db.session.expire_all()
    assert [db.session.get(SyncRun, r.id).status for r in runs] == ["succeeded"] * 4
    kinds = [r["path"].rsplit("/", 1)[1] for r in sim.requests_log()
             if "/imports/" in r["path"] and r["method"] == "POST"][imports_before:]
    assert kinds == ["sales-invoice", "sales-receipt", "expense-bill", "expense-payment"]
    assert reconcile(blogger.id, d1, d3).mismatched == []

    status = client.get(f"{URL}status", query_string={"start": d1.isoformat(), "end": d3.isoformat(), "polling": 1},
                        headers={"HX-Request": "true"})
    assert status.headers.get("HX-Refresh") == "true"  # all done: the page reloads its figures
    assert "every 2s" not in status.get_data(as_text=True)


def test_chart_and_downloads(app_ctx, factories, sim, redis_conn, client, auth):
    blogger = connected_blogger(factories)
    factories.make_sale(blogger, myt(DAY, 9), [("3", "10.00", "0")])
    factories.make_sale(blogger, myt(DAY + timedelta(days=1), 9), [("1", "12.00", "0")])
    db.session.commit()
    push(blogger, "pos_invoice", DAY, DAY, redis_conn)
    auth.login(blogger.user.email)
    dates = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}

    html = client.get(URL, query_string=dates).get_data(as_text=True)
    assert html.count('<svg class="chart"') == 4
    assert 'class="series-source"' in html and 'class="series-aiaccount"' in html
    assert "<title>2026-05-14 · Source RM 30.00 (1) · In AiAccount RM 30.00 (1) · Matches</title>" in html
    assert "Never pushed</title></circle>" in html
    assert "style=" not in html and "<script>" not in html

    answer = client.get(f"{URL}download.csv", query_string=dates)
    assert answer.mimetype == "text/csv" and "aiaccount-reconcile-MYR-2026-05-14-2026-05-15.csv" in answer.headers[
        "Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    assert rows[0][:5] == ["Type", "Day (MYT)", "Currency", "Source documents", "Source total"]
    by_key = {(r[0], r[1]): r for r in rows[1:]}
    assert by_key[("POS Sales Invoice", "2026-05-14")][2:8] == ["MYR", "1", "30.00", "1", "30.00", "0.00"]
    assert by_key[("POS Sales Invoice", "2026-05-15")][-1] == "never_pushed"

    answer = client.get(f"{URL}download.xlsx", query_string=dates)
    book = load_workbook(io.BytesIO(answer.get_data()))
    values = list(book.worksheets[0].iter_rows(values_only=True))
    assert values[0][0] == "Type" and len(values) == len(rows)
    assert ("POS Sales Invoice", "2026-05-15", "MYR", 1, 12.0, 0, 0.0, 12.0) == values[2][:8]
    summary = list(book.worksheets[1].iter_rows(values_only=True))
    assert summary[1][:5] == ("POS Sales Invoice", 42.0, 30.0, 1, 0)


def test_chinese_page_renders(app_ctx, factories, client, auth):
    blogger = connected_blogger(factories)
    blogger.user.locale = "zh"
    factories.make_sale(blogger, myt(DAY, 9))
    db.session.commit()
    auth.login(blogger.user.email)
    answer = client.get(URL, query_string={"start": DAY.isoformat(), "end": DAY.isoformat()})
    assert answer.status_code == 200 and 'lang="zh-Hans"' in answer.get_data(as_text=True)


def test_refresh_failure_is_shown(app_ctx, factories, sim, redis_conn, client, auth):
    blogger = factories.make_blogger()
    set_credential(blogger, HEALTHY.name, "aia_wrong_key_000", actor=None)
    db.session.commit()
    auth.login(blogger.user.email)
    dates = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    assert client.post(f"{URL}refresh", data=dates).status_code == 303
    page = client.get(URL, query_string=dates).get_data(as_text=True)
    assert "Reading your AiAccount book" in page and "every 2s" in page
    work(redis_conn)
    page = client.get(URL, query_string=dates).get_data(as_text=True)
    assert "The last refresh from AiAccount failed" in page and "API key" in page
    assert db.session.scalar(select(ReconcileSnapshot)) is None


def test_a_blogger_sees_only_their_own_book(app_ctx, factories, client, auth):
    mine = connected_blogger(factories)
    other = connected_blogger(factories)
    factories.make_sale(other, myt(DAY, 9), [("1", "999.00", "0")])
    db.session.commit()
    auth.login(mine.user.email)
    html = client.get(URL, query_string={"start": DAY.isoformat(), "end": DAY.isoformat()}).get_data(as_text=True)
    assert "RM 999.00" not in html and "Source RM 0.00" in html


@pytest.mark.parametrize("method,path", [
    ("get", ""), ("get", "status"), ("get", "download.csv"), ("get", "download.xlsx"),
    ("post", "fix"), ("post", "refresh"),
])
def test_only_bloggers_reach_the_pages(app_ctx, client, auth, method, path):
    answer = getattr(client, method)(URL + path)
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    make_admin()
    db.session.commit()
    auth.login("admin@test.example")
    assert getattr(client, method)(URL + path).status_code == 403


def test_migration_goes_down_and_up(app_ctx):
    from flask_migrate import downgrade, upgrade

    downgrade(revision="671f617feb0d")
    assert "reconcile_snapshots" not in inspect(db.engine).get_table_names()
    upgrade()
    assert "reconcile_snapshots" in inspect(db.engine).get_table_names()


def test_each_currency_is_reconciled_on_its_own_and_the_fix_covers_all(app_ctx, factories, sim, redis_conn,
                                                                      client, auth):
    """A blogger with a MYR store and an SGD store: the figures are never added together; the
    page shows one currency at a time; AiAccount's book is read per currency; the alert and
    "Push what's missing" see a mismatch in either."""
    from portal.alerts import open_alerts
    from portal.models import Store
    from portal.reconcile import currencies, merged_fix_ranges, reconcile_all

    blogger = connected_blogger(factories)
    singapore = Store(name="Orchard pop-up", currency="SGD", sst_rate=Decimal("0"))
    blogger.stores.append(singapore)
    factories.make_sale(blogger, myt(DAY, 9), [("3", "10.00", "0")])
    factories.make_sale(blogger, myt(DAY, 10), [("1", "12.00", "0")], store=singapore)
    factories.make_settlement(factories.make_kol(blogger), "2026-04", "500.00", DAY, paid_at=myt(DAY, 16))
    db.session.commit()
    assert currencies(blogger.id) == ["MYR", "SGD"]

    myr, sgd = reconcile(blogger.id, DAY, DAY), reconcile(blogger.id, DAY, DAY, "SGD")
    assert (myr.currency, myr.types["pos_invoice"].source_total) == ("MYR", Decimal("30.00"))
    assert (sgd.currency, sgd.types["pos_invoice"].source_total) == ("SGD", Decimal("12.00"))
    assert myr.types["kol_bill"].source_total == Decimal("50.00")  # KOL documents: the home currency
    assert sgd.types["kol_bill"].source_total == Decimal("0.00")

    for sync_type in ("pos_invoice", "pos_receipt", "kol_bill", "kol_payment"):
        assert push(blogger, sync_type, redis_conn=redis_conn).status == "succeeded"
    factories.make_sale(blogger, myt(DAY, 20), [("1", "7.00", "0")], store=singapore)  # after the push
    db.session.commit()
    request_refresh(blogger, DAY, DAY)
    work(redis_conn)
    stored = {(s.sync_type, s.currency): (s.documents, s.total)
              for s in db.session.scalars(select(ReconcileSnapshot).where(ReconcileSnapshot.blogger_id == blogger.id))}
    assert stored[("pos_invoice", "MYR")] == (1, Decimal("30.00"))
    assert stored[("pos_invoice", "SGD")] == (1, Decimal("12.00"))
    assert stored[("kol_bill", "SGD")] == (0, Decimal("0.00"))  # known to be empty, not guessed

    myr, sgd = reconcile_all(blogger.id, DAY, DAY)
    assert myr.mismatched == []
    [late] = sgd.types["pos_invoice"].mismatched
    assert (late.status, late.source_total, late.pushed_total, late.pushed_from) == (
        "arrived_after", Decimal("19.00"), Decimal("12.00"), "aiaccount")
    assert merged_fix_ranges([myr, sgd]) == [("pos_invoice", DAY, DAY), ("pos_receipt", DAY, DAY)]
    assert [(a.kind, a.sync_type) for a in open_alerts(blogger, today=DAY + timedelta(days=1))] == [
        ("out_of_sync", "pos_invoice"), ("out_of_sync", "pos_receipt")]

    auth.login(blogger.user.email)
    dates = {"start": DAY.isoformat(), "end": DAY.isoformat()}
    html = client.get(URL, query_string=dates).get_data(as_text=True)
    assert "Source RM 30.00 · in AiAccount RM 30.00" in html and "SGD 19.00" not in html
    assert "currency=SGD" in html and "2 mismatches" in html
    assert 'id="push-missing"' in html and 'id="push-missing" disabled' not in html
    html = client.get(URL, query_string={**dates, "currency": "sgd"}).get_data(as_text=True)
    assert "Source SGD 19.00 · in AiAccount SGD 12.00" in html and 'aria-current="page">SGD' in html
    answer = client.get(URL, query_string={**dates, "currency": "EUR"})
    assert answer.status_code == 422 and "Choose one of your book&#39;s currencies: MYR / SGD." in answer.get_data(
        as_text=True)
    answer = client.get(f"{URL}download.csv", query_string={**dates, "currency": "SGD"})
    assert "aiaccount-reconcile-SGD-" in answer.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    assert {r[2] for r in rows[1:]} == {"SGD"} and len(rows) == 3  # invoices and receipts of the 14th
    assert client.get(f"{URL}download.xlsx", query_string={**dates, "currency": "<x>"}).status_code == 400

    answer = client.post(f"{URL}fix", data={**dates, "currency": "SGD"})
    assert answer.status_code == 303 and "currency=SGD" in answer.headers["Location"]
    fixes = db.session.scalars(select(SyncRun).where(SyncRun.trigger == "reconcile").order_by(SyncRun.id)).all()
    assert [(r.sync_type, r.start_date, r.end_date) for r in fixes] == [("pos_invoice", DAY, DAY),
                                                                        ("pos_receipt", DAY, DAY)]


def test_the_page_opens_on_the_default_range_without_dates(app_ctx, factories, client, auth):
    """The sync page links to the bare URL (and the currency switch may carry only ?currency=)."""
    from portal.forms import DateRangeForm

    blogger = connected_blogger(factories)
    auth.login(blogger.user.email)
    start, end = DateRangeForm.default_range()
    for query in ({}, {"currency": "MYR"}):
        answer = client.get(URL, query_string=query)
        html = answer.get_data(as_text=True)
        assert answer.status_code == 200, html
        assert f'value="{start.isoformat()}"' in html and f'value="{end.isoformat()}"' in html
        assert "Pick a start date." not in html
    answer = client.get(f"{URL}download.csv")
    assert answer.status_code == 200 and f"{start.isoformat()}-{end.isoformat()}.csv" in answer.headers[
        "Content-Disposition"]
    assert client.get(URL, query_string={"start": start.isoformat()}).status_code == 422  # half a range


@pytest.mark.parametrize("currency, amount", [("MYR", "3.00"), ("SGD", "45000.00"), ("MYR", "8000000.00")])
def test_the_chart_margin_fits_its_longest_amount_label(currency, amount):
    from portal.reconcile import Day, TypeResult
    from portal.reconcile.exports import build_chart

    chart = build_chart(TypeResult("pos_invoice", [Day("pos_invoice", DAY, 1, Decimal(amount))]), currency)
    longest = max(len(tick["label"]) for tick in chart.y_ticks)
    assert chart.plot["x"] - 6 >= 7 * longest  # 12 px labels end 6 px left of the plot
    assert chart.plot["x"] + chart.plot["w"] <= chart.width
