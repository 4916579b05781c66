"""Auto-push bench: ``python bench/autopush.py [--bloggers 500] [--transactions 40] [--workers 2]``.

A temp SQLite database with ``--bloggers`` connected bloggers (each its own company and API key on
the simulator), each with ``--transactions`` POS transactions yesterday (MYT) and auto-push due now.
The hourly tick (``enqueue_due``) enqueues one chain job per blogger; ``--workers`` RQ workers
(``rq worker -w portal.worker.Worker``) run them against the simulator over HTTP. Prints the total
time, the per-blogger chain time (p50/p95/max) and checks that every blogger's four steps ran in
order (each step created after the previous one finished, types in the chain's order).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import Stack, result_line  # noqa: E402


def company(n: int) -> tuple[str, str]:
    return f"Bench Shop {n:04d} Sdn Bhd", f"aia_bench_{n:04d}_key"


def seed(app, bloggers: int, transactions: int) -> None:
    """Bloggers, stores, settings, credentials and yesterday's sales (the demo shop's generator)."""
    from decimal import Decimal

    from portal.credentials import set_credential
    from portal.extensions import db
    from portal.models import AiAccountSettings, Blogger, Store, User
    from portal.passwords import hash_password
    from portal.seed import _Ids, _ShopBuilder, _times_for_day
    from portal.timeutil import myt_today

    rng = random.Random(8)
    yesterday = myt_today() - timedelta(days=1)
    with app.app_context():
        pw = hash_password("bench-pass-123")
        made = []
        for n in range(1, bloggers + 1):
            user = User(email=f"bench{n}@bench.test", name=f"Bench {n}", password_hash=pw, role="blogger")
            blogger = Blogger(user=user, shop_name=f"Bench shop {n}")
            blogger.stores = [Store(name="Kiosk", currency="MYR", sst_rate=Decimal("10.00")),
                              Store(name="Pop-up", currency="SGD", sst_rate=Decimal("0.00"))]
            blogger.settings = AiAccountSettings(auto_push_enabled=True, auto_push_hour=0)
            db.session.add(blogger)
            made.append(blogger)
        db.session.flush()
        ids = _Ids()
        for n, blogger in enumerate(made, start=1):
            set_credential(blogger, *company(n), None)
            shop = _ShopBuilder(rng, ids, blogger, blogger.stores)
            for when in _times_for_day(rng, yesterday, transactions):
                shop.sale(when)
            shop.batch.flush()
        db.session.commit()


def report(app, bloggers: int) -> dict:
    from sqlalchemy import select

    from portal.autopush import ORDER
    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        runs = db.session.scalars(select(SyncRun).where(SyncRun.trigger == "auto_push")
                                  .order_by(SyncRun.blogger_id, SyncRun.id)).all()
        chains: dict[int, list[SyncRun]] = {}
        for run in runs:
            chains.setdefault(run.blogger_id, []).append(run)
        in_order = bad = 0
        durations = []
        for chain in chains.values():
            types = tuple(r.sync_type for r in chain)
            ok = types == ORDER and all(r.status in ("succeeded", "no_data") for r in chain) and all(
                later.created_at >= earlier.finished_at for earlier, later in zip(chain, chain[1:]))
            in_order += ok
            bad += not ok
            if chain[-1].finished_at:
                durations.append((chain[-1].finished_at - chain[0].created_at).total_seconds())
        durations.sort()
        statuses: dict[str, int] = {}
        for run in runs:
            statuses[run.status] = statuses.get(run.status, 0) + 1
        return {"chains": len(chains), "in_order": in_order, "not_in_order": bad, "statuses": statuses,
                "p50": statistics.median(durations) if durations else 0,
                "p95": durations[int(len(durations) * 0.95)] if durations else 0,
                "max": durations[-1] if durations else 0, "runs": len(runs)}


def done_count(app) -> int:
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import SyncRun

    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(SyncRun).where(
            SyncRun.trigger == "auto_push", SyncRun.status.in_(("succeeded", "no_data", "failed"))))
        db.session.remove()
        return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bloggers", type=int, default=500)
    parser.add_argument("--transactions", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    with Stack("autopush") as stack:
        seed_file = stack.dir / "companies.json"
        seed_file.write_text(json.dumps({"companies": [
            {"name": company(n)[0], "api_key": company(n)[1]} for n in range(1, args.bloggers + 1)]}))
        stack.start_simulator("--seed", str(seed_file))
        app = stack.app()
        started = time.perf_counter()
        seed(app, args.bloggers, args.transactions)
        seed_seconds = time.perf_counter() - started
        stack.start_workers(args.workers)
        from portal.autopush import enqueue_due

        started = time.perf_counter()
        with app.app_context():
            due = enqueue_due()
        expected = 4 * len(due)
        while done_count(app) < expected and time.perf_counter() - started < args.timeout:
            time.sleep(0.5)
        total = time.perf_counter() - started
        result = report(app, args.bloggers)
    print(f"autopush: {args.bloggers} bloggers x {args.transactions} transactions yesterday, {args.workers} "
          f"RQ workers; seeded in {seed_seconds:.1f} s; {len(due)} chains enqueued")
    print(f"  all done in {total:.1f} s; runs {result['runs']} {result['statuses']}")
    print(f"  per-blogger chain: p50 {result['p50']:.2f} s  p95 {result['p95']:.2f} s  max {result['max']:.2f} s")
    print(f"  four steps in order: {result['in_order']} of {result['chains']} bloggers "
          f"({result['not_in_order']} not)")
    print(result_line(bloggers=args.bloggers, transactions=args.transactions, workers=args.workers,
                      seconds=round(total, 1), blogger_p50_s=round(result["p50"], 2),
                      blogger_p95_s=round(result["p95"], 2), chains=result["chains"],
                      in_order=result["in_order"], not_in_order=result["not_in_order"]))
    return 0 if result["in_order"] == args.bloggers else 1


if __name__ == "__main__":
    sys.exit(main())
