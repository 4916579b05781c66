"""The reconcile page in a real browser: the chart renders and "Push what's missing" works.

A minimal live stack of its own (so the sync page's browser tests keep their untouched shop):
gunicorn serves the portal on a migrated and seeded SQLite file, a real ``rq worker`` runs the
jobs, the simulator answers as AiAccount, Debian's Chromium is driven through Playwright.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from redis import Redis

from config import TestConfig
from portal.timeutil import myt_today
from tests.plugin_simulator import ROOT, free_port

pytestmark = pytest.mark.browser

from tests.plugin_browser import CHROMIUM
from tests.plugin_browser import stop as _stop
from tests.plugin_browser import wait_http as _wait_http
VENV_BIN = Path(sys.executable).parent
PAGE = "/finance/aiaccount-sync/reconcile/"


@pytest.fixture(scope="module")
def live(simulator, tmp_path_factory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    workdir = tmp_path_factory.mktemp("reconcile-stack")
    redis_url = TestConfig.REDIS_URL
    queue = f"aiaccount-reconcile-browser-{os.getpid()}"
    env = {**os.environ, "PORTAL_ENV": "development", "DATABASE_URL": f"sqlite:///{workdir / 'portal.sqlite'}",
           "REDIS_URL": redis_url, "RQ_QUEUE": queue, "AIACCOUNT_BASE_URL": simulator.url,
           "AIACCOUNT_MASTER_KEYS": TestConfig.AIACCOUNT_MASTER_KEYS, "SECRET_KEY": "reconcile-browser-secret",
           "PYTHONPATH": str(ROOT)}
    simulator.reset()
    flask = [str(VENV_BIN / "flask"), "--app", "wsgi"]
    for command in (["db", "upgrade"], ["seed-demo", "--days", "4"]):
        subprocess.run([*flask, *command], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    logs = {name: workdir / f"{name}.log" for name in ("portal", "worker")}
    with logs["portal"].open("wb") as portal_log, logs["worker"].open("wb") as worker_log:
        portal = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=portal_log, stderr=subprocess.STDOUT)
        worker = subprocess.Popen([str(VENV_BIN / "rq"), "worker", "--url", redis_url, "-w", "portal.worker.Worker", queue],
                                  cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT)
    redis = Redis.from_url(redis_url)
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", portal, logs["portal"])
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(worker)
        _stop(portal)
        redis.delete(*redis.keys(f"rq:*{queue}*")) if redis.keys(f"rq:*{queue}*") else None
        redis.close()


@pytest.fixture
def page(chromium, live):
    context = chromium.new_context(base_url=live, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(8000)
    yield page
    context.close()


def test_chart_renders_and_push_whats_missing_reconciles_the_days(page):
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
    SHOTS = ROOT / "docs" / "screenshots"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "reconcile-before.png"), full_page=True)

    page.get_by_role("button", name="Push what's missing").click()
    expect(page.locator(".flash-success")).to_contain_text("Pushing what's missing")
    # The status polls every 2 s, then reloads the page once every run has ended.
    expect(page.locator("#reconcile-status")).not_to_have_attribute("hx-trigger", re.compile("."), timeout=60000)
    expect(invoices.locator(".reconcile-headline")).to_contain_text("missing 0 · failed 0", timeout=15000)
    expect(page.locator(".reconcile-mismatches")).to_have_count(0)
    expect(chart.locator("circle.chart-mismatch")).to_have_count(0)
    expect(page.get_by_role("button", name="Push what's missing")).to_be_disabled()
    page.screenshot(path=str(SHOTS / "reconcile-after.png"), full_page=True)

    page.get_by_role("button", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.locator("#reconcile-pos_invoice svg.chart")).to_be_visible()
