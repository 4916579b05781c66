"""Click to green: ``python bench/click_to_green.py [--clicks 3]``.

The demo shop in a temp SQLite database, the simulator, one forking RQ worker
(``rq worker -w portal.worker.Worker``) and gunicorn (2 workers) on loopback. Headless Debian
Chromium (Playwright, never ``playwright install``) logs in as blogger1, opens AiAccount Sync on
the default range and clicks Sync on POS Sales Invoice; the time from the click to the green pill
(``#pill-pos_invoice .pill-ok``) is measured in the browser. Each click after the first re-pushes
the same range (AiAccount reports the documents as already there; the pill still turns green).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import DEMO_LOGIN, Stack, result_line  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SYNC_TYPE = "pos_invoice"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    times = []
    with Stack("click") as stack:
        stack.seed()
        stack.start_simulator()
        stack.start_workers(1)
        base = stack.start_gunicorn(workers=2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(locale="en-US")
            page.goto(f"{base}/login")
            page.fill("input[name=email]", DEMO_LOGIN[0])
            page.fill("input[name=password]", DEMO_LOGIN[1])
            with page.expect_navigation():
                page.press("input[name=password]", "Enter")
            for _ in range(args.clicks):
                page.goto(f"{base}/finance/aiaccount-sync/")
                button = page.locator(f"button[hx-post$='/{SYNC_TYPE}/sync']")
                if button.count() != 1:
                    raise RuntimeError(f"no Sync button at {page.url}: {page.content()[:500]!r}")
                page.evaluate(f"window.__old = document.getElementById('pill-{SYNC_TYPE}');"
                              "window.__clicked = performance.now()")
                started = time.perf_counter()
                button.click()
                # A new pill element (the click's answer or a later poll), and it is green.
                page.wait_for_function(f"() => {{ const p = document.getElementById('pill-{SYNC_TYPE}');"
                                       " return p && p !== window.__old && p.querySelector('.pill-ok'); }",
                                       timeout=30_000)
                wall = time.perf_counter() - started
                browser_ms = page.evaluate("performance.now() - window.__clicked")
                times.append(browser_ms / 1000)
                print(f"  click → green pill: {browser_ms / 1000:.2f} s (wall {wall:.2f} s)")
            browser.close()
    print(f"click_to_green: {len(times)} clicks, median {statistics.median(times):.2f} s, max {max(times):.2f} s "
          "(htmx polls the pill every 2 s while the run is queued or running)")
    print(result_line(clicks=len(times), median_s=round(statistics.median(times), 2),
                      max_s=round(max(times), 2), first_s=round(times[0], 2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
