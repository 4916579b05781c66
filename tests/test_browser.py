"""The blogger page in a real browser against the real stack.

gunicorn (2 workers) serves the portal on a migrated and seeded SQLite file, a real ``rq worker``
process runs the jobs, the simulator answers as AiAccount. Debian's Chromium is driven through
Playwright (never ``playwright install``). Screenshots of the main states go to $SCREENSHOTS_DIR
(README: ``SCREENSHOTS_DIR=docs/screenshots``), else to a temp dir.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis

from config import TestConfig
from portal.timeutil import myt_today

from tests.plugin_browser import LiveStack, live_stack, require_browser, screenshot

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(tempfile.gettempdir()) / f"ns16-screenshots-{os.getpid()}"
REDIS_URL = "redis://127.0.0.1:6379/14"
PAGE = "/finance/aiaccount-sync/"
SEED_DAYS = 40


@pytest.fixture(scope="session")
def stack(simulator, tmp_path_factory) -> Iterator[LiveStack]:
    require_browser()
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()  # database 14 is this file's own
    try:
        with live_stack(simulator, tmp_path_factory.mktemp("stack"), "browser", SEED_DAYS, REDIS_URL) as live:
            yield live
    finally:
        redis.flushdb()
        redis.close()


@pytest.fixture
def page(chromium, stack):
    context = chromium.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(8000)
    yield page
    context.close()


def login(page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("demo1234")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{PAGE}")


def shot(page, name: str) -> None:
    screenshot(page, name, SCREENSHOTS)


def test_sync_turns_the_pill_green_then_preview_and_download(page):
    from playwright.sync_api import expect

    login(page, "blogger1@demo.test")
    pill = page.locator("#pill-pos_invoice")
    expect(pill).to_contain_text("Never synced")
    # From the first seeded day: this month's refunds credit invoices of last month.
    page.get_by_label("Start date").fill((myt_today() - timedelta(days=SEED_DAYS)).isoformat())
    page.get_by_role("button", name="Sync POS Sales Invoice").click()
    expect(pill).to_contain_text(re.compile("Queued|Syncing|Last sync"), timeout=2000)
    expect(pill).to_contain_text("Last sync", timeout=5000)
    expect(pill).not_to_have_attribute("hx-trigger", re.compile("."))
    assert re.search(r"Last sync \d{1,2}/\d{1,2} \d{2}:\d{2} · \d+ rows", pill.inner_text())
    shot(page, "blogger-sync.png")

    page.get_by_role("button", name="Preview POS Sales Invoice").click()
    panel = page.locator("#preview")
    expect(panel).to_contain_text("Preview: POS Sales Invoice")
    expect(panel).to_contain_text("Pre-flight passed")
    expect(panel.locator("table tbody tr")).to_have_count(10)
    shot(page, "preview.png")

    with page.expect_download() as info:
        page.get_by_role("button", name="Download xlsx POS Sales Invoice").click()
    assert re.fullmatch(r"aiaccount-sales-invoice-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.xlsx",
                        info.value.suggested_filename)
    assert Path(info.value.path()).read_bytes()[:2] == b"PK"

    # Reversed dates: inline errors through htmx (a 422 answer swapped in), nothing queued.
    page.get_by_label("End date").fill("2020-01-01")
    page.get_by_role("button", name="Sync KOL Bill").click()
    expect(page.locator("#sync-range")).to_contain_text("The end date is before the start date.")
    expect(page.locator("#pill-kol_bill")).to_contain_text("Never synced")


def test_missing_tax_code_turns_the_pill_red_with_the_fix(page):
    from playwright.sync_api import expect

    login(page, "blogger2@demo.test")
    page.get_by_role("button", name="Sync POS Sales Invoice").click()
    pill = page.locator("#pill-pos_invoice")
    expect(pill).to_contain_text("Failed", timeout=5000)
    expect(pill).to_contain_text("Tax code missing or disabled in AiAccount")
    pill.get_by_text("Details and fix").click()
    expect(pill).to_contain_text("AiAccount → Settings → Tax Codes: add MY-SALES10")
    expect(pill.get_by_role("link", name="View Import History in AiAccount")).to_be_visible()
    shot(page, "blogger-failed.png")


def test_language_toggle_switches_to_chinese(page):
    from playwright.sync_api import expect

    login(page, "blogger1@demo.test")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("button", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.get_by_role("button", name="English")).to_be_visible()
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_expired_session_while_polling_goes_to_login(page, stack):
    from playwright.sync_api import expect

    _queue_a_run_that_never_ends(stack, "blogger1@demo.test", "kol_payment")
    login(page, "blogger1@demo.test")
    pill = page.locator("#pill-kol_payment")
    expect(pill).to_have_attribute("hx-trigger", "every 2s")
    page.context.clear_cookies()
    page.wait_for_url(re.compile(r"/login\?next="), timeout=6000)
    expect(page.get_by_role("heading", name="Sign in to NS16")).to_be_visible()


def _queue_a_run_that_never_ends(stack: LiveStack, email: str, sync_type: str) -> None:
    """A queued run whose job was never enqueued: its pill polls for as long as the test needs."""
    from sqlalchemy import select

    from config import DevelopmentConfig
    from portal import create_app
    from portal.extensions import db
    from portal.models import User
    from portal.syncs import request_sync

    config = type("BrowserStackConfig", (DevelopmentConfig,), {
        "SQLALCHEMY_DATABASE_URI": stack.env["DATABASE_URL"], "REDIS_URL": REDIS_URL,
        "RQ_QUEUE": stack.env["RQ_QUEUE"], "AIACCOUNT_MASTER_KEYS": TestConfig.AIACCOUNT_MASTER_KEYS})
    app = create_app(config)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        day = myt_today() - timedelta(days=1)
        request_sync(user.blogger, sync_type, day, day, trigger="cli", enqueue=False)
        db.session.remove()
        db.engine.dispose()


def test_super_admin_enters_a_key_and_then_sees_only_the_masked_form(page):
    from playwright.sync_api import expect

    from tests.plugin_simulator import HEALTHY

    page.goto("/login")
    page.get_by_label("Email").fill("admin@demo.test")
    page.get_by_label("Password").fill("demo1234")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/aiaccount/")
    expect(page.get_by_role("heading", name="AiAccount connections")).to_be_visible()
    shot(page, "admin-index.png")
    page.get_by_role("link", name="Mei's Beauty Corner").first.click()
    page.get_by_label("API key").fill(f"  {HEALTHY.key}  ")
    page.get_by_label("Company name in AiAccount").fill(HEALTHY.name)
    page.get_by_role("button", name="Save and test").click()
    expect(page.get_by_text("Connected to Blogger One Trading").first).to_be_visible()
    expect(page.get_by_text("Removed spaces around the key").first).to_be_visible()
    expect(page.get_by_text("••••1a2b").first).to_be_visible()
    expect(page.get_by_label("API key")).to_have_value("")
    assert HEALTHY.key not in page.content()
    shot(page, "admin-blogger.png")
