"""The reconcile page in a real browser: the chart renders and "Push what's missing" works.

A live stack of its own (``plugin_browser.live_stack``, so the sync page's browser tests keep their
untouched shop): gunicorn, a real ``rq worker``, the simulator as AiAccount, Debian's Chromium
driven through Playwright.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from config import TestConfig
from portal.timeutil import myt_today

pytestmark = pytest.mark.browser

from tests.plugin_browser import live_stack, require_browser, screenshot

PAGE = "/finance/aiaccount-sync/reconcile/"


@pytest.fixture(scope="module")
def live(simulator, tmp_path_factory) -> Iterator[str]:
    require_browser()
    with live_stack(simulator, tmp_path_factory.mktemp("reconcile-stack"), "reconcile-browser", 4,
                    TestConfig.REDIS_URL) as stack:
        yield stack.url


@pytest.fixture
def page(chromium, live):
    context = chromium.new_context(base_url=live, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(8000)
    yield page
    context.close()


def test_chart_renders_and_push_whats_missing_reconciles_the_days(page, tmp_path):
    from playwright.sync_api import expect

    page.goto("/login")
    page.get_by_label("Email").fill("blogger1@demo.test")
    page.get_by_label("Password").fill("demo1234")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/finance/aiaccount-sync/")
    end = myt_today() - timedelta(days=1)
    start = end - timedelta(days=2)
    page.goto(f"{PAGE}?start={start.isoformat()}&end={end.isoformat()}")

    invoices = page.locator("#reconcile-pos_invoice")
    chart = invoices.locator("svg.chart")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["height"] > 100
    expect(chart.locator(".series-source rect")).to_have_count(3)
    expect(chart.locator(".series-aiaccount rect")).to_have_count(3)
    expect(chart.locator("circle.chart-mismatch")).to_have_count(3)  # nothing pushed yet
    expect(invoices.locator(".reconcile-headline")).to_contain_text(re.compile(r"missing [1-9]\d* · failed 0"))
    expect(invoices.locator(".reconcile-mismatches")).to_contain_text("Never pushed")
    screenshot(page, "reconcile-before.png", tmp_path)

    page.get_by_role("button", name="Push what's missing").click()
    expect(page.locator(".flash-success")).to_contain_text("Pushing what's missing")
    # The status polls every 2 s, then reloads the page once every run has ended.
    expect(page.locator("#reconcile-status")).not_to_have_attribute("hx-trigger", re.compile("."), timeout=60000)
    expect(invoices.locator(".reconcile-headline")).to_contain_text("missing 0 · failed 0", timeout=15000)
    expect(page.locator(".reconcile-mismatches")).to_have_count(0)
    expect(chart.locator("circle.chart-mismatch")).to_have_count(0)
    expect(page.get_by_role("button", name="Push what's missing")).to_be_disabled()
    screenshot(page, "reconcile-after.png", tmp_path)

    # The demo shop also sells in SGD: that book is reconciled on its own, and the push fixed it too.
    page.locator(".currency-switch").get_by_role("link", name="SGD").click()
    expect(page.locator(".currency-switch [aria-current=page]")).to_have_text("SGD")
    expect(invoices.locator(".reconcile-headline")).to_contain_text(re.compile(r"Source SGD [\d,.]+ · in AiAccount SGD"))
    expect(invoices.locator(".reconcile-headline")).to_contain_text("missing 0 · failed 0")
    expect(page.locator(".reconcile-headline").first).not_to_contain_text("RM")

    page.get_by_role("button", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.locator("#reconcile-pos_invoice svg.chart")).to_be_visible()
