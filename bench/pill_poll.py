"""Status-pill polling bench: ``python bench/pill_poll.py [--seconds 8] [--pollers 8]``.

The portal under gunicorn (2 workers) on loopback, a temp SQLite database with the demo shop and a
history of sync runs. One load client (threads, one logged-in session each) measures, for the pill
partial (GET /finance/aiaccount-sync/<type>/pill, as htmx asks for it) and for a bare route (a
static file: no database, no template):

* saturation: ``--pollers`` threads back to back for ``--seconds`` each → req/s, p50/p99, ratio;
* polling: the same pollers each asking every ``--interval`` s (htmx asks every 2 s; faster here to
  get enough samples in bounded time) → the p50/p99 a user's poll sees.

SQL queries per poll are counted in-process (a ``before_cursor_execute`` listener, Flask's test
client on the same database).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import DEMO_LOGIN, Stack, login, result_line  # noqa: E402

PILL = "/finance/aiaccount-sync/pos_invoice/pill"
BARE = "/static/css/app.css"
HTMX = {"HX-Request": "true"}


def add_history(app, runs: int) -> None:
    """``runs`` finished sync runs for the demo bloggers, so the pill's query has rows to skip."""
    from portal.extensions import db
    from portal.models import SyncRun
    from portal.timeutil import myt_today, utcnow

    with app.app_context():
        now, today = utcnow(), myt_today()
        types = ("pos_invoice", "pos_receipt", "kol_bill", "kol_payment")
        for n in range(runs):
            created = now - timedelta(minutes=runs - n)
            db.session.add(SyncRun(blogger_id=1 + n % 2, sync_type=types[n % 4], start_date=today - timedelta(days=7),
                                   end_date=today - timedelta(days=1), status="succeeded", trigger="user",
                                   row_count=40, line_count=120, created_count=40, created_at=created,
                                   started_at=created, finished_at=created + timedelta(seconds=2)))
        db.session.commit()


def queries_per_poll(app) -> int:
    from sqlalchemy import event

    from portal.extensions import db

    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    answer = client.post("/login", data={"email": DEMO_LOGIN[0], "password": DEMO_LOGIN[1]})
    assert answer.status_code in (302, 303), answer.status_code
    client.get(PILL, headers=HTMX)  # warm
    count = {"n": 0}
    with app.app_context():
        engine = db.engine

    def _count(*_args):
        count["n"] += 1

    event.listen(engine, "before_cursor_execute", _count)
    answer = client.get(PILL, headers=HTMX)
    event.remove(engine, "before_cursor_execute", _count)
    assert answer.status_code == 200, answer.status_code
    return count["n"]


def hammer(base: str, path: str, cookies, pollers: int, seconds: float, interval: float = 0.0) -> dict:
    """``pollers`` threads asking for ``path`` for ``seconds`` (every ``interval`` s, 0 = back to back)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def poller(offset: float) -> None:
        session = requests.Session()
        session.cookies.update(cookies)
        mine, bad = [], 0
        next_at = time.monotonic() + offset
        while True:
            if interval:
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                next_at += interval
            if time.monotonic() >= deadline:
                break
            started = time.perf_counter()
            answer = session.get(base + path, headers=HTMX, timeout=10)
            mine.append(time.perf_counter() - started)
            bad += answer.status_code != 200
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.monotonic()
    threads = [threading.Thread(target=poller, args=(interval * n / pollers,)) for n in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {"requests": len(latencies), "errors": errors[0], "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--runs", type=int, default=2000, help="sync runs in the history")
    args = parser.parse_args()
    with Stack("pill") as stack:
        stack.seed()
        app = stack.app()
        add_history(app, args.runs)
        per_poll = queries_per_poll(app)
        base = stack.start_gunicorn(workers=2)
        session = requests.Session()
        login(session, base)
        check = session.get(base + PILL, headers=HTMX, timeout=10)
        if check.status_code != 200 or "pill" not in check.text:
            print(f"pill route answered HTTP {check.status_code}: {check.text[:200]!r}")
            return 1
        for path in (PILL, BARE):  # warm both workers
            hammer(base, path, session.cookies, args.pollers, 1.0)
        results = {}
        for name, path in (("pill", PILL), ("bare", BARE)):
            results[name] = hammer(base, path, session.cookies, args.pollers, args.seconds)
            results[name + "_poll"] = hammer(base, path, session.cookies, args.pollers, args.seconds,
                                             interval=args.interval)
    for name, r in results.items():
        print(f"{name:10} {r['requests']:6d} requests ({r['errors']} errors)  {r['rps']:7.1f} req/s  "
              f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")
    ratio = results["pill"]["rps"] / results["bare"]["rps"]
    print(f"{args.pollers} pollers, gunicorn 2 workers, {args.runs} runs in the history; "
          f"pill/bare throughput {ratio:.2f}; {per_poll} SQL queries per poll")
    print(result_line(pill_rps=round(results["pill"]["rps"], 1), bare_rps=round(results["bare"]["rps"], 1),
                      ratio=round(ratio, 3), p99_ms=round(results["pill_poll"]["p99_ms"], 2),
                      p50_ms=round(results["pill_poll"]["p50_ms"], 2),
                      saturated_p99_ms=round(results["pill"]["p99_ms"], 2), queries_per_poll=per_poll))
    return 0


if __name__ == "__main__":
    sys.exit(main())
