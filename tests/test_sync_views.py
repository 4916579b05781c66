"""The blogger's AiAccount Sync page: cards, Sync, the pill, Preview, Download, runs.

Real database, real Redis (RQ SimpleWorker), the simulator over HTTP. Data is set up inside a
short app context and every request runs outside it, so each request loads what it needs itself
(as in production) and the query counts are honest.
"""
from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime, timedelta, timezone
from html import unescape

import pytest
from openpyxl import load_workbook
from rq import SimpleWorker
from sqlalchemy import event, func, select

from portal.aiaccount import COLUMNS
from portal.connections import check_connection
from portal.credentials import set_credential
from portal.extensions import db
from portal.forms import DateRangeForm
from portal.models import Blogger, PosTransaction, SyncRun
from portal.queue import get_queue
from portal.syncs import request_sync
from portal.timeutil import myt_today
from tests.factories import PASSWORD
from tests.plugin_simulator import HEALTHY, NO_SST

MYT = timezone(timedelta(hours=8))
DAY = date(2026, 5, 14)
BASE = "/finance/aiaccount-sync"
HTMX = {"HX-Request": "true"}
RANGE = {"start": DAY.isoformat(), "end": DAY.isoformat()}


@pytest.fixture
def app_overrides(simulator):
    return {"AIACCOUNT_BASE_URL": simulator.url, "AIACCOUNT_TIMEOUT": 3, "AIACCOUNT_MAX_RETRIES": 1}


def myt(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MYT).astimezone(timezone.utc)


def make_shop(app, factories, company=HEALTHY, *, sales: int = 2, member: str | None = None,
              snapshot: bool = False, **kw) -> tuple[int, str]:
    """A blogger with ``sales`` POS sales on DAY; (blogger id, login email)."""
    with app.app_context():
        blogger = factories.make_blogger(**kw)
        for n in range(sales):
            factories.make_sale(blogger, myt(DAY, 9 + n), [("2", "5.50", "0")], member=member)
        if company is not None:
            credential = set_credential(blogger, company.name, company.key, actor=None)
            if snapshot:  # the master-data snapshot a connection test stores
                assert check_connection(credential, company.key) is None
        db.session.commit()
        return blogger.id, blogger.user.email


def login(client, email: str) -> None:
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302, response.text


def work(app, redis_conn) -> None:
    with app.app_context():
        SimpleWorker([get_queue()], connection=redis_conn).work(burst=True)


def queued_jobs(app) -> int:
    with app.app_context():
        return get_queue().count


def run_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(SyncRun.id)))


def text_of(response) -> str:
    """The visible text, tags dropped and whitespace squeezed (assertions read like the page)."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.text)))


# --- the page -------------------------------------------------------------------------------


def test_page_shows_four_cards_with_default_dates(app, client, factories):
    _id, email = make_shop(app, factories)
    login(client, email)
    response = client.get(f"{BASE}/")
    assert response.status_code == 200
    page = text_of(response)
    for title in ("POS Sales Invoice", "POS Sales Receipt", "KOL Bill", "KOL Payment"):
        assert title in page
    assert page.count("Never synced") == 4
    start, end = DateRangeForm.default_range()
    assert f'value="{start.isoformat()}"' in response.text and f'value="{end.isoformat()}"' in response.text
    for label in ("Preview", "Download xlsx"):
        assert page.count(label) >= 4
    assert "Not yours:" in page and "e-commerce orders" in page
    assert "hx-trigger" not in response.text  # nothing polls when nothing runs
    assert 'aria-live="polite"' in response.text


def test_admin_cannot_open_the_blogger_page(app, client, factories):
    with app.app_context():
        factories.make_admin()
        db.session.commit()
    login(client, "admin@test.example")
    assert client.get(f"{BASE}/").status_code == 403


def test_not_connected_disables_sync_and_shows_the_steps(app, client, factories, redis_conn):
    _id, email = make_shop(app, factories, company=None)
    login(client, email)
    response = client.get(f"{BASE}/")
    page = text_of(response)
    assert "AiAccount is not connected — send your API key and company name to the super admin" in page
    assert "Generate an API key." in page and "aiaccount.my" in page
    sync_buttons = re.findall(r'<button[^>]*formaction="[^"]*/sync"[^>]*>', response.text)
    assert len(sync_buttons) == 4 and all(" disabled" in b for b in sync_buttons)
    # A POST anyway is refused with the same message, and nothing is enqueued.
    response = client.post(f"{BASE}/pos_invoice/sync", data=RANGE)
    assert response.status_code == 422
    assert "POS Sales Invoice: AiAccount is not connected" in text_of(response)
    assert queued_jobs(app) == 0 and run_count(app) == 0


# --- Sync and the pill ----------------------------------------------------------------------


def test_sync_queues_then_the_pill_turns_green_and_stops_polling(app, client, factories, sim, redis_conn):
    _id, email = make_shop(app, factories, sales=2)
    login(client, email)
    response = client.post(f"{BASE}/pos_invoice/sync", data=RANGE, headers=HTMX)
    assert response.status_code == 200
    assert 'id="pill-pos_invoice"' in response.text
    # the first look 1 s after the click, then every 2 s while the run is active
    assert 'hx-trigger="load delay:1s"' in response.text and 'hx-swap="outerHTML"' in response.text
    assert f'hx-get="{BASE}/pos_invoice/pill"' in response.text
    assert 'hx-trigger="every 2s"' in client.get(f"{BASE}/pos_invoice/pill", headers=HTMX).text
    assert "Queued" in text_of(response)
    assert 'hx-swap-oob="true"' in response.text  # the date block, errors cleared
    assert queued_jobs(app) == 1

    work(app, redis_conn)
    pill = client.get(f"{BASE}/pos_invoice/pill", headers=HTMX)
    assert pill.status_code == 200
    text = text_of(pill)
    assert re.search(r"✓ Last sync \d{1,2}/\d{1,2} \d{2}:\d{2} · 2 rows", text), text
    assert "hx-trigger" not in pill.text
    assert "View Import History in AiAccount" in text
    with app.app_context():
        run = db.session.scalar(select(SyncRun))
        assert (run.status, run.trigger, run.triggered_by.email) == ("succeeded", "user", email)
        assert run.import_url in pill.text

    # The same range again: AiAccount holds both already.
    client.post(f"{BASE}/pos_invoice/sync", data=RANGE, headers=HTMX)
    work(app, redis_conn)
    assert "2 rows · 2 already in AiAccount" in text_of(client.get(f"{BASE}/pos_invoice/pill"))


def test_sync_without_javascript_redirects_back_to_the_page(app, client, factories, sim, redis_conn):
    _id, email = make_shop(app, factories)
    login(client, email)
    response = client.post(f"{BASE}/pos_receipt/sync", data=RANGE)
    assert response.status_code == 303
    assert response.location == f"{BASE}/?start={DAY}&end={DAY}#card-pos_receipt"
    page = client.get(response.location)
    text = text_of(page)
    assert "POS Sales Receipt: sync queued." in text and "Queued" in text
    assert f'value="{DAY}"' in page.text  # the dates picked survive the redirect
    # A second click while it is queued returns the same run.
    again = client.post(f"{BASE}/pos_receipt/sync", data=RANGE, follow_redirects=True)
    assert "a sync is already under way" in text_of(again)
    assert queued_jobs(app) == 1 and run_count(app) == 1


def test_failed_pill_shows_the_reason_and_the_fix(app, client, factories, sim, redis_conn):
    _id, email = make_shop(app, factories, NO_SST, sst_rate="10")
    login(client, email)
    client.post(f"{BASE}/pos_invoice/sync", data=RANGE, headers=HTMX)
    work(app, redis_conn)
    pill = client.get(f"{BASE}/pos_invoice/pill", headers=HTMX)
    text = text_of(pill)
    assert re.search(r"✗ Failed \d{1,2}/\d{1,2} \d{2}:\d{2}", text), text
    assert "Tax code missing or disabled in AiAccount" in text  # visible without hovering
    assert "AiAccount → Settings → Tax Codes: add MY-SALES10" in text
    assert "<details" in pill.text and "<summary" in pill.text  # keyboard / tap
    assert re.search(r'title="[^"]*MY-SALES10', pill.text)  # hover
    history = f"{sim.url}/company/Blogger%20Two%20Enterprise/imports"
    assert f'href="{history}"' in pill.text
    assert f'href="{history.removesuffix("/imports")}/settings/tax-codes"' in pill.text
    assert "hx-trigger" not in pill.text
    runs = text_of(client.get(f"{BASE}/pos_invoice/runs"))
    assert "✗ Failed Tax code missing or disabled in AiAccount" in runs

    # In Chinese the stored error speaks Chinese.
    client.post("/language/zh", data={"next": f"{BASE}/"})
    assert "AiAccount → 设置 → 税码：添加 MY-SALES10" in text_of(client.get(f"{BASE}/pos_invoice/pill"))


@pytest.mark.parametrize(("start", "end", "message"), [
    ("2026-05-14", "2026-05-01", "The end date is before the start date."),
    ("2026-05-14", (myt_today() + timedelta(days=3)).isoformat(), "The end date is in the future."),
    ("2024-01-01", "2026-05-01", "Pick at most 366 days."),
    ("14/05/2026", "2026-05-14", "Enter the date as YYYY-MM-DD."),
    ("", "2026-05-14", "Pick a start date."),
])
def test_bad_dates_are_inline_errors_and_nothing_is_enqueued(app, client, factories, redis_conn, start, end,
                                                             message):
    _id, email = make_shop(app, factories)
    login(client, email)
    response = client.post(f"{BASE}/pos_invoice/sync", data={"start": start, "end": end})
    assert response.status_code == 422
    assert message in text_of(response)
    assert 'aria-invalid="true"' in response.text and "POS Sales Invoice" in response.text  # the whole page
    htmx = client.post(f"{BASE}/kol_bill/sync", data={"start": start, "end": end}, headers=HTMX)
    assert htmx.status_code == 422
    assert htmx.headers["HX-Retarget"] == "#sync-range" and htmx.headers["HX-Reswap"] == "outerHTML"
    assert htmx.text.lstrip().startswith('<fieldset class="sync-range" id="sync-range"')
    assert message in text_of(htmx)
    assert queued_jobs(app) == 0 and run_count(app) == 0


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/orders/sync"), ("get", "/orders/pill"), ("get", "/blogger_settlements/preview"),
    ("get", "/orders/download"), ("get", "/orders/runs"),
])
def test_unknown_type_is_404(app, client, factories, method, path):
    _id, email = make_shop(app, factories)
    login(client, email)
    response = getattr(client, method)(BASE + path, data=RANGE)
    assert response.status_code == 404
    assert "Page not found" in response.text


def test_htmx_sync_posts_carry_the_csrf_token(app_overrides, _schema, redis_conn, factories, sim):
    from tests.conftest import _make_app

    app = _make_app(_schema, {**app_overrides, "WTF_CSRF_ENABLED": True})
    with app.app_context():
        from tests.conftest import _empty_tables

        _empty_tables()
    _id, email = make_shop(app, factories)
    client = app.test_client()
    login_page = client.get("/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page).group(1)
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    page = client.get(f"{BASE}/").text
    header_token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", page).group(1)
    refused = client.post(f"{BASE}/pos_invoice/sync", data=RANGE, headers=HTMX)
    assert refused.status_code == 400 and queued_jobs(app) == 0
    accepted = client.post(f"{BASE}/pos_invoice/sync", data=RANGE, headers={**HTMX, "X-CSRFToken": header_token})
    assert accepted.status_code == 200 and "Queued" in accepted.text
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_poll_costs_at_most_two_queries(app, client, factories, sim, redis_conn):
    """Per poll, the whole request: the session's user with its blogger and credential (one joined
    query), then the latest run. No lazy loads from the template, whatever the run's state."""
    _id, email = make_shop(app, factories, NO_SST, sst_rate="10")
    login(client, email)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        def poll() -> list[str]:
            statements.clear()
            assert client.get(f"{BASE}/pos_invoice/pill", headers=HTMX).status_code == 200
            return list(statements)

        assert len(poll()) == 2  # never synced
        client.post(f"{BASE}/pos_invoice/sync", data=RANGE, headers=HTMX)
        polling = poll()
        assert len(polling) == 2 and "FROM users" in polling[0] and "sync_runs" in polling[1], polling
        work(app, redis_conn)
        failed = poll()
        assert len(failed) == 2, failed  # a red pill too: the snapshot came with the credential
    finally:
        event.remove(engine, "before_cursor_execute", record)


# --- runs -----------------------------------------------------------------------------------


def test_recent_runs_and_run_detail(app, client, factories, sim, redis_conn):
    blogger_id, email = make_shop(app, factories, sales=1)
    login(client, email)
    client.post(f"{BASE}/kol_bill/sync", data=RANGE, headers=HTMX)
    work(app, redis_conn)
    with app.app_context():
        blogger = db.session.get(Blogger, blogger_id)
        request_sync(blogger, "kol_bill", DAY - timedelta(days=1), DAY - timedelta(days=1), trigger="cli",
                     enqueue=False)
        run_ids = db.session.scalars(select(SyncRun.id).order_by(SyncRun.id)).all()
    runs = client.get(f"{BASE}/kol_bill/runs")
    assert runs.status_code == 200
    text = text_of(runs)
    assert "No data" in text and "Sync button" in text and "CLI" in text and "Queued" in text
    assert "2026-05-13 → 2026-05-13" in text and "MYT" in text
    detail = client.get(f"{BASE}/runs/{run_ids[0]}")
    assert detail.status_code == 200 and "No data" in text_of(detail)
    assert client.get(f"{BASE}/pos_invoice/runs").status_code == 200


def test_recent_runs_are_paginated_by_twenty(app, client, factories):
    blogger_id, email = make_shop(app, factories, sales=0)
    with app.app_context():
        for n in range(23):
            db.session.add(SyncRun(blogger_id=blogger_id, sync_type="pos_invoice", start_date=DAY,
                                   end_date=DAY, status="no_data", trigger="auto_push",
                                   created_at=myt(DAY, 0, n)))
        db.session.commit()
    login(client, email)
    first = client.get(f"{BASE}/pos_invoice/runs")
    assert first.text.count("<tr>") == 21 and "Page 1 of 2" in first.text  # header + 20
    second = client.get(f"{BASE}/pos_invoice/runs?page=2")
    assert second.text.count("<tr>") == 4 and "Auto-push" in second.text


def test_another_bloggers_run_is_404(app, client, factories, redis_conn):
    other_id, _other = make_shop(app, factories)
    _id, email = make_shop(app, factories)
    with app.app_context():
        run, _created = request_sync(db.session.get(Blogger, other_id), "pos_invoice", DAY, DAY, enqueue=False)
        run_id = run.id
    login(client, email)
    assert client.get(f"{BASE}/runs/{run_id}").status_code == 404
    assert client.get(f"{BASE}/runs/999999").status_code == 404
    assert "Never synced" in client.get(f"{BASE}/pos_invoice/pill").text  # not the other blogger's run


# --- preview and download -------------------------------------------------------------------


def test_preview_shows_counts_total_and_the_preflight_error(app, client, factories, sim):
    _id, email = make_shop(app, factories, NO_SST, sales=3, sst_rate="10", snapshot=True)
    login(client, email)
    response = client.post(f"{BASE}/pos_invoice/preview", data=RANGE, headers=HTMX)
    assert response.status_code == 200
    text = text_of(response)
    assert "Preview: POS Sales Invoice" in text
    assert "Documents 3" in text and "Lines 3" in text
    assert "MYR 36.30" in text  # 3 × (2 × 5.50 + 10% SST 1.10)
    assert "Pre-flight: Tax code missing or disabled in AiAccount" in text
    assert "AiAccount → Settings → Tax Codes: add MY-SALES10" in text
    assert text.count("POS2026051") == 3 and "MY-SALES10" in text
    assert not [r for r in sim.requests_log() if r["path"].startswith("/api/v1/imports")]  # nothing pushed

    # Without JavaScript: the whole page with the preview panel below the cards.
    page = client.post(f"{BASE}/pos_invoice/preview", data=RANGE)
    assert page.status_code == 200 and "KOL Payment" in page.text and "Documents 3" in text_of(page)


def test_preview_without_a_snapshot_is_not_checked(app, client, factories, sim):
    _id, email = make_shop(app, factories, sales=1)
    login(client, email)
    response = client.get(f"{BASE}/pos_invoice/preview", query_string=RANGE)
    assert response.status_code == 200
    assert "not checked: AiAccount master data not fetched yet" in text_of(response)


def test_preview_and_download_escape_html_in_data(app, client, factories, sim):
    _id, email = make_shop(app, factories, sales=1, member="<script>alert(1)</script>")
    login(client, email)
    response = client.get(f"{BASE}/pos_invoice/preview", query_string=RANGE, headers=HTMX)
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_download_is_the_file_the_preview_shows(app, client, factories, sim):
    _id, email = make_shop(app, factories, sales=3)
    login(client, email)
    preview = client.get(f"{BASE}/pos_invoice/preview", query_string=RANGE, headers=HTMX)
    preview_numbers = re.findall(r"<td>(POS\d{13})</td>", preview.text)
    assert len(preview_numbers) == 3

    response = client.get(f"{BASE}/pos_invoice/download", query_string=RANGE)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="aiaccount-sales-invoice-2026-05-14-2026-05-14.xlsx"')
    assert response.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    rows = list(load_workbook(io.BytesIO(response.data), read_only=True).active.iter_rows(values_only=True))
    assert list(rows[0]) == COLUMNS["sales-invoice"]
    assert [row[0] for row in rows[1:]] == preview_numbers
    assert [str(row[13]) for row in rows[1:]] == ["11", "11", "11"]  # Line Amount


@pytest.mark.parametrize("app_overrides", [{"SYNC_CHUNK_DOCUMENTS": 2}])
def test_download_of_several_chunks_is_a_zip(app, client, factories, app_overrides):
    _id, email = make_shop(app, factories, company=None, sales=3)
    login(client, email)
    response = client.post(f"{BASE}/pos_invoice/download", data=RANGE)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].endswith('-2026-05-14.zip"')
    with zipfile.ZipFile(io.BytesIO(response.data)) as archive:
        names = archive.namelist()
        assert names == ["aiaccount-sales-invoice-2026-05-14-2026-05-14-part1.xlsx",
                         "aiaccount-sales-invoice-2026-05-14-2026-05-14-part2.xlsx"]
        sizes = [load_workbook(io.BytesIO(archive.read(n)), read_only=True).active.max_row - 1 for n in names]
    assert sizes == [2, 1]


def test_download_of_an_empty_range_is_the_bare_template(app, client, factories):
    _id, email = make_shop(app, factories, company=None, sales=0)
    login(client, email)
    response = client.get(f"{BASE}/kol_payment/download", query_string=RANGE)
    rows = list(load_workbook(io.BytesIO(response.data), read_only=True).active.iter_rows(values_only=True))
    assert [list(r) for r in rows] == [COLUMNS["expense-payment"]]


def test_download_with_bad_dates_is_a_400_page(app, client, factories):
    _id, email = make_shop(app, factories)
    login(client, email)
    response = client.get(f"{BASE}/pos_invoice/download?start=2026-05-14&end=2026-05-01")
    assert response.status_code == 400
    assert "The end date is before the start date." in text_of(response)
    assert "<header class=\"topbar\">" in response.text  # in the layout
    assert client.get(f"{BASE}/pos_invoice/download?start=yesterday").status_code == 400


def test_expired_session_while_polling_answers_401_with_hx_redirect(app, client, factories):
    _id, email = make_shop(app, factories)
    login(client, email)
    client.post("/logout")
    response = client.get(f"{BASE}/pos_invoice/pill", headers=HTMX)
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=")


def test_enter_in_a_date_field_applies_the_dates_without_syncing(app, client, factories, redis_conn):
    _id, email = make_shop(app, factories)
    login(client, email)
    page = client.get(f"{BASE}/").text
    first_submit = re.search(r"<button[^>]*type=\"submit\"[^>]*>", page[page.index('id="sync-form"'):]).group(0)
    assert "formaction" not in first_submit and "hx-post" not in first_submit  # the form's default button
    response = client.post(f"{BASE}/", data=RANGE)
    assert response.status_code == 303 and response.location == f"{BASE}/?start={DAY}&end={DAY}"
    assert client.post(f"{BASE}/", data={"start": "2026-05-14", "end": "2026-05-01"}).status_code == 422
    assert queued_jobs(app) == 0 and run_count(app) == 0


def test_skipped_source_rows_and_changed_documents_are_warned_about(app, client, factories, sim, redis_conn):
    blogger_id, email = make_shop(app, factories, sales=2)
    with app.app_context():
        txn = db.session.scalars(select(PosTransaction).where(PosTransaction.blogger_id == blogger_id)).first()
        txn.items[0].line_total += 1  # NS16 should never have stored this: the builder skips it
        receipt_no = txn.receipt_no
        db.session.commit()
    login(client, email)
    client.post(f"{BASE}/pos_invoice/sync", data=RANGE, headers=HTMX)
    work(app, redis_conn)
    with app.app_context():
        run = db.session.scalar(select(SyncRun))
        run.changed_count = 1  # as AiAccount reports a re-push of an edited document
        db.session.commit()
    text = text_of(client.get(f"{BASE}/pos_invoice/pill"))
    assert "Last sync" in text and "· 1 row" in text
    assert f"1 transaction skipped: {receipt_no} (item 'Product 1'" in text
    assert "1 changed since pushed — AiAccount kept the first version" in text

    # The reason is stored as a code with its values, so it reads in the reader's language.
    client.post("/language/zh", data={"next": f"{BASE}/"})
    with app.app_context():
        run_id = db.session.scalar(select(SyncRun.id))
    detail = text_of(client.get(f"{BASE}/runs/{run_id}"))
    assert f"{receipt_no} — 商品 'Product 1'：数量 × 单价 − 折扣 ≠ 行金额" in detail
    with app.app_context():  # a run stored before problems had codes keeps its English message
        run = db.session.get(SyncRun, run_id)
        run.error_detail = '{"problems": [{"reference": "POS1", "message": "an old reason"}], "problem_count": 1}'
        db.session.commit()
    assert "POS1 — an old reason" in text_of(client.get(f"{BASE}/runs/{run_id}"))


def test_a_run_failed_outside_a_push_still_explains_itself(app, client, factories):
    blogger_id, email = make_shop(app, factories)
    with app.app_context():
        db.session.add(SyncRun(blogger_id=blogger_id, sync_type="kol_bill", start_date=DAY, end_date=DAY,
                               status="failed", error_code="worker_lost", error_message="The sync stopped"))
        db.session.commit()
    login(client, email)
    text = text_of(client.get(f"{BASE}/kol_bill/pill"))
    assert "The sync stopped before it finished" in text
    assert "documents already in AiAccount are skipped, never duplicated" in text
