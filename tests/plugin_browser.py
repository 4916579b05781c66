"""Pytest plugin: one headless Debian Chromium for the whole session, driven by Playwright, and
the live stack the browser tests click through.

Playwright's sync API owns an event loop, so a process can hold only one: every browser test
file takes its pages from this ``chromium`` fixture. Never downloads a browser.

``live_stack`` starts the real thing on loopback: a migrated and seeded SQLite file, gunicorn
(2 workers) serving the portal, an ``rq worker`` (``portal.worker.Worker``) running the jobs
against the simulator. ``screenshot`` writes to ``$SCREENSHOTS_DIR`` when it is set (the README's
``SCREENSHOTS_DIR=docs/screenshots``), else to the test's temp dir, so a test run leaves the
checkout as it found it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from redis import Redis

from config import TestConfig
from tests.plugin_simulator import ROOT, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    """Wait until ``url`` answers; fail with the process log if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited early:\n{log.read_text()}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


VENV_BIN = Path(sys.executable).parent


def require_browser() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@dataclass
class LiveStack:
    url: str
    env: dict[str, str]
    redis_url: str
    queue: str


@contextmanager
def live_stack(simulator, workdir: Path, name: str, seed_days: int, redis_url: str) -> Iterator[LiveStack]:
    """The portal under gunicorn and one RQ worker on a fresh seeded database; stopped, and the
    queue's keys removed, on exit."""
    queue = f"aiaccount-{name}-{os.getpid()}"
    env = {
        **os.environ,
        "PORTAL_ENV": "development",
        "DATABASE_URL": f"sqlite:///{workdir / 'portal.sqlite'}",
        "REDIS_URL": redis_url,
        "RQ_QUEUE": queue,
        "AIACCOUNT_BASE_URL": simulator.url,
        "AIACCOUNT_MASTER_KEYS": TestConfig.AIACCOUNT_MASTER_KEYS,
        "SECRET_KEY": f"{name}-secret",
        "PYTHONPATH": str(ROOT),
    }
    simulator.reset()
    flask = [str(VENV_BIN / "flask"), "--app", "wsgi"]
    for command in (["db", "upgrade"], ["seed-demo", "--days", str(seed_days)]):
        subprocess.run([*flask, *command], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    logs = {part: workdir / f"{part}.log" for part in ("portal", "worker")}
    with logs["portal"].open("wb") as portal_log, logs["worker"].open("wb") as worker_log:
        portal = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=ROOT, env=env, stdout=portal_log, stderr=subprocess.STDOUT)
        worker = subprocess.Popen(
            [str(VENV_BIN / "rq"), "worker", "--url", redis_url, "-w", "portal.worker.Worker", queue],
            cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT)
    redis = Redis.from_url(redis_url)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", portal, logs["portal"])
        yield LiveStack(f"http://127.0.0.1:{port}", env, redis_url, queue)
    finally:
        stop(worker)
        stop(portal)
        keys = redis.keys(f"rq:*{queue}*")
        if keys:
            redis.delete(*keys)
        redis.close()


def screenshot(page, name: str, fallback: Path) -> Path:
    """A full-page screenshot: into $SCREENSHOTS_DIR if set, else into ``fallback``."""
    target = Path(os.environ.get("SCREENSHOTS_DIR") or fallback)
    if not target.is_absolute():
        target = ROOT / target
    target.mkdir(parents=True, exist_ok=True)
    path = target / name
    page.screenshot(path=str(path), full_page=True)
    return path
