"""Randomized faulted pushes against the real processes; prints duplicates (must be 0) and lost (must be 0).

    PYTHONPATH=. .venv/bin/python bench/faults.py [--pushes 200] [--seconds 300] [--seed 16]

Sets up its own temporary SQLite database through the migrations, starts the AiAccount simulator
and two `rq worker` processes (one with the scheduler, one that gets killed and replaced), and uses
the Redis at REDIS_URL — it FLUSHES that database, so point it at a spare one
(e.g. redis://127.0.0.1:6379/9); without REDIS_URL it starts a throwaway redis-server.

Each push: a blogger gets 0–3 new POS sales, one fault is queued for its AiAccount company (or
the worker running it is killed -9, or Redis loses the queue), and Sync runs over a random range.
A failed run is synced again, as a user would, until it succeeds. At the end every document is
checked in AiAccount: copies above one are duplicates; documents a successful run covered but
AiAccount lacks are lost. tests/test_faults.py runs the same loop, short.
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from portal.credentials import set_credential  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import ACTIVE_RUN_STATUSES, Blogger, SyncRun  # noqa: E402
from portal.queue import redis_connection  # noqa: E402
from portal.syncs import reap_stale_runs, request_sync  # noqa: E402
from portal.timeutil import myt_today  # noqa: E402
from tests import factories  # noqa: E402

MYT = timezone(timedelta(hours=8))
KIND = "sales-invoice"
WINDOW_DAYS = 10
MAX_RANGE_DAYS = 4
CHUNK_DOCUMENTS = 4  # small, so most pushes upload several files and a fault can split a push
DRAIN_SECONDS = 25  # no new push this close to the time bound: the last ones get to finish
MAX_RUNS_PER_PUSH = 6
STALE_SECONDS = 6  # longer than the slowest live upload below, so only dead workers are reaped

# (weight, fault, how many, extra) — the counts are sized against AIACCOUNT_MAX_RETRIES=2 (3 tries
# per attempt) and one RQ retry (2 attempts): up to 5 faults heal inside the run, 6 fail it.
FAULTS = [
    (18, "none", 0, {}),
    (12, "server_error", 2, {}),          # healed by the client's own retries
    (10, "server_error", 4, {}),          # needs an RQ retry (the scheduler)
    (4, "server_error", 6, {}),           # fails the run: "retry later"; the user syncs again
    (9, "reset", 2, {}),
    (5, "reset", 3, {}),
    (9, "rate_limit", 2, {"retry_after": 0}),
    (10, "delay_after_commit", 1, {"delay": 1.6}),  # past the 1 s timeout: replayed by the key
    (12, "kill", 1, {"delay": 0.8}),      # kill -9 the worker while it pushes
    (5, "flush", 0, {}),                  # Redis loses the queue right after the Sync
]


@dataclass
class Push:
    number: int
    blogger_id: int
    company: str
    fault: str
    start: date
    end: date
    expected: set[str]
    run_ids: list[int] = field(default_factory=list)
    kill_at: float | None = None
    killed: bool = False
    began: float = field(default_factory=time.monotonic)


@dataclass
class Result:
    pushes: int = 0
    runs: int = 0
    retried: int = 0
    duplicates: int = 0
    lost: int = 0
    documents: int = 0
    kills: int = 0
    flushes: int = 0
    gave_up: int = 0
    stuck: int = 0
    bad_counts: int = 0
    seconds: float = 0.0
    faults: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)

    def line(self) -> str:
        return (f"RESULT pushes={self.pushes} duplicates={self.duplicates} lost={self.lost} "
                f"retried={self.retried} seconds={self.seconds:.1f}")


class FaultLoop:
    """Randomized faulted pushes over ``bloggers`` bloggers, each with its own AiAccount company.

    Needs an app whose RQ_QUEUE / REDIS_URL / AIACCOUNT_BASE_URL match ``stack`` (the workers'
    processes, tests/plugin_stack.py) and ``sim`` (a simulator started with --control)."""

    def __init__(self, app, sim, stack, *, seed: int, bloggers: int = 4, kills: bool = True,
                 log=None) -> None:
        self.app, self.sim, self.stack = app, sim, stack
        self.rng = random.Random(seed)
        self.blogger_count = bloggers
        self.kills_enabled = kills
        self.log = log or (lambda *_: None)
        self.result = Result()
        self.done: list[Push] = []
        self.bloggers: list[tuple[int, str]] = []
        self.sales: dict[int, list[tuple[date, str]]] = {}
        self.scheduler_worker = None
        self.killable = None
        self.window_end = myt_today() - timedelta(days=1)
        self.window_start = self.window_end - timedelta(days=WINDOW_DAYS - 1)

    # set-up ----------------------------------------------------------------------------------

    def _setup(self) -> None:
        self.app.config["SYNC_STALE_SECONDS"] = STALE_SECONDS
        token = secrets.token_hex(4)
        for i in range(self.blogger_count):
            name, key = f"Fault Loop {i + 1}", f"aia_faultloop_{i + 1}_{token}"
            self.sim.put_company({"name": name, "api_key": key})
            blogger = factories.make_blogger()
            set_credential(blogger, name, key, actor=None)
            self.bloggers.append((blogger.id, name))
            self.sales[blogger.id] = []
        db.session.commit()
        worker_env = {"SYNC_STALE_SECONDS": STALE_SECONDS, "SYNC_CHUNK_DOCUMENTS": CHUNK_DOCUMENTS}
        self.worker_env = worker_env
        from tests.plugin_stack import wait_registered

        self.scheduler_worker = self.stack.worker(scheduler=True, wait=False, **worker_env)
        self.killable = self.stack.worker(wait=False, **worker_env)
        wait_registered(self.scheduler_worker, self.killable)

    def _add_sales(self, blogger_id: int, count: int) -> None:
        blogger = db.session.get(Blogger, blogger_id)
        for _ in range(count):
            day = self.window_start + timedelta(days=self.rng.randrange(WINDOW_DAYS))
            at = datetime(day.year, day.month, day.day, self.rng.randrange(8, 22), self.rng.randrange(60),
                          tzinfo=MYT).astimezone(timezone.utc)
            sale = factories.make_sale(blogger, at, [("1", f"{self.rng.randrange(1, 300)}.{self.rng.randrange(100):02d}", "0")])
            self.sales[blogger_id].append((day, sale.receipt_no))
        db.session.commit()

    # one push --------------------------------------------------------------------------------

    def _start(self, number: int, blogger_id: int, company: str) -> Push:
        self._add_sales(blogger_id, self.rng.randrange(0, 4))
        start = self.window_start + timedelta(days=self.rng.randrange(WINDOW_DAYS))
        end = min(self.window_end, start + timedelta(days=self.rng.randrange(MAX_RANGE_DAYS)))
        choices = [f for f in FAULTS if self.kills_enabled or f[1] != "kill"]
        _, fault, count, extra = self.rng.choices(choices, weights=[f[0] for f in choices])[0]
        label = fault if fault in ("none", "kill", "flush") else f"{fault}x{count}"
        self.result.faults[label] += 1
        if fault == "kill":
            self.sim.fault(company, "delay_after_commit", count=1, **extra)  # keeps it inside the upload
        elif fault not in ("none", "flush"):
            self.sim.fault(company, fault, count=count, **extra)
        expected = {n for day, n in self.sales[blogger_id] if start <= day <= end}
        push = Push(number, blogger_id, company, fault, start, end, expected)
        self._sync(push, db.session.get(Blogger, blogger_id))
        if fault == "flush":
            redis_connection().flushdb()  # the job (and every other one waiting) is gone
            self.result.flushes += 1
        return push

    def _sync(self, push: Push, blogger) -> None:
        run, created = request_sync(blogger, "pos_invoice", push.start, push.end)
        if not created:
            raise AssertionError(f"blogger {push.blogger_id} already has run {run.id} under way")
        push.run_ids.append(run.id)
        self.result.runs += 1

    def _maybe_kill(self, push: Push, run: SyncRun) -> None:
        if push.fault != "kill" or push.killed or run.status != "running":
            return
        if push.kill_at is None:
            try:
                job = Job.fetch(run.job_id, connection=redis_connection())
            except NoSuchJobError:
                return
            if job.worker_name != self.killable.name:
                push.killed = True  # the scheduler's worker has it: never killed (see docs/faults.md)
                return
            push.kill_at = time.monotonic() + self.rng.uniform(0, 0.6)
        if time.monotonic() >= push.kill_at:
            self.killable.kill9()
            push.killed = True
            self.result.kills += 1
            self.log(f"push {push.number}: killed worker {self.killable.name} during run {run.id}")
            self.killable = self.stack.worker(wait=False, **self.worker_env)  # registers meanwhile

    # the loop --------------------------------------------------------------------------------

    def run(self, pushes: int, deadline: float) -> Result:
        started = time.monotonic()
        stop_starting = started + max(deadline - DRAIN_SECONDS, deadline * 0.6)
        hard_stop = started + deadline
        self._setup()
        in_flight: dict[int, Push] = {}
        number = 0
        last_reap = 0.0
        while time.monotonic() < hard_stop:
            now = time.monotonic()
            if number < pushes and now < stop_starting:
                for blogger_id, company in self.bloggers:
                    if blogger_id not in in_flight and number < pushes:
                        number += 1
                        in_flight[blogger_id] = self._start(number, blogger_id, company)
            if not in_flight:
                break
            db.session.rollback()  # see what the workers wrote
            runs = {r.id: r for r in db.session.scalars(select(SyncRun).where(
                SyncRun.id.in_([p.run_ids[-1] for p in in_flight.values()])))}
            for blogger_id, push in list(in_flight.items()):
                run = runs[push.run_ids[-1]]
                self._maybe_kill(push, run)
                if run.status in ACTIVE_RUN_STATUSES:
                    continue
                self._ended(push, run, in_flight)
            if now - last_reap > 0.5:
                reap_stale_runs(requeue_after=1)  # what the every-minute cron job does
                last_reap = now
            time.sleep(0.05)
        self.result.stuck = len(in_flight)
        self._count_documents()
        self.result.seconds = time.monotonic() - started
        return self.result

    def _ended(self, push: Push, run: SyncRun, in_flight: dict[int, Push]) -> None:
        if run.status in ("succeeded", "no_data"):
            if run.created_count + run.skipped_count + run.changed_count != run.row_count \
                    or run.row_count != len(push.expected):
                self.result.bad_counts += 1
                self.log(f"push {push.number}: run {run.id} counts {run.row_count}/{run.created_count}/"
                         f"{run.skipped_count}, expected {len(push.expected)} documents")
            if len(push.run_ids) > 1 or run.attempts > 1:
                self.result.retried += 1
            self.result.pushes += 1
            self.done.append(push)
            del in_flight[push.blogger_id]
            return
        self.result.failures[run.error_code] += 1
        if len(push.run_ids) >= MAX_RUNS_PER_PUSH:
            self.result.gave_up += 1
            self.log(f"push {push.number}: gave up after {len(push.run_ids)} runs ({run.error_code})")
            del in_flight[push.blogger_id]
            return
        self._sync(push, db.session.get(Blogger, push.blogger_id))  # the user clicks Sync again

    def _count_documents(self) -> None:
        """Duplicates: extra copies of one (number, counterparty). Lost: documents a successful
        push covered (the sales in its range when Sync was clicked) that AiAccount lacks."""
        covered = {(push.company, number) for push in self.done for number in push.expected}
        held: set[tuple[str, str]] = set()
        for _, company in self.bloggers:
            documents = self.sim.documents(company, KIND)
            # AiAccount's identity of a document: (number, counterparty compared case-insensitively).
            identities = Counter((d["number"], d["counterparty"].strip().lower()) for d in documents)
            self.result.duplicates += sum(n - 1 for n in identities.values())
            held |= {(company, d["number"]) for d in documents}
        self.result.documents = len(held)
        lost = covered - held
        self.result.lost = len(lost)
        if lost:
            self.log(f"lost: {sorted(lost)[:20]}")


# standalone ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=300.0, help="hard time bound of the loop")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--bloggers", type=int, default=4)
    args = parser.parse_args(argv)

    from flask_migrate import upgrade

    from config import TestConfig
    from portal import create_app
    from tests.plugin_simulator import start_simulator, stop_simulator
    from tests.plugin_stack import WORKER_ENV, RedisServer, Stack

    workdir = Path(tempfile.mkdtemp(prefix="faults-bench-"))
    database_url = f"sqlite:///{workdir / 'portal.sqlite'}"
    queue = f"aiaccount-bench-{secrets.token_hex(3)}"
    redis_server = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        redis_server = RedisServer(workdir).start()
        redis_url = redis_server.url
    print(f"database {database_url}\nredis {redis_url} (flushed)\nqueue {queue}\nlogs {workdir}", flush=True)
    sim = start_simulator(workdir / "simulator.sqlite", workdir / "simulator.log", "--control")
    stack = None
    conn = Redis.from_url(redis_url)
    try:
        conn.flushdb()
        overrides = {"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url, "RQ_QUEUE": queue,
                     "AIACCOUNT_BASE_URL": sim.url, "TESTING": False,
                     "AIACCOUNT_TIMEOUT": float(WORKER_ENV["AIACCOUNT_TIMEOUT"]),
                     "AIACCOUNT_MAX_RETRIES": int(WORKER_ENV["AIACCOUNT_MAX_RETRIES"]),
                     "SYNC_RETRY_INTERVALS": [1]}
        app = create_app(type("BenchConfig", (TestConfig,), overrides))
        stack = Stack(database_url, redis_url, queue, sim.url, workdir)
        with app.app_context():
            upgrade()
            loop = FaultLoop(app, sim, stack, seed=args.seed, bloggers=args.bloggers,
                             log=lambda message: print(message, flush=True))
            result = loop.run(args.pushes, args.seconds)
        print(f"runs {result.runs} · documents in AiAccount {result.documents} · kills {result.kills} · "
              f"queue flushes {result.flushes} · gave up {result.gave_up} · unfinished {result.stuck} · "
              f"count mismatches {result.bad_counts}")
        print("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(result.faults.items())))
        print("failed runs (then synced again): " + (", ".join(
            f"{k} {v}" for k, v in sorted(result.failures.items())) or "none"))
        print(result.line(), flush=True)
        ok = (result.duplicates == 0 and result.lost == 0 and result.pushes >= args.pushes
              and not result.gave_up and not result.stuck and not result.bad_counts)
        return 0 if ok else 1
    finally:
        if stack is not None:
            stack.stop_all()
        stop_simulator(sim.process)
        try:
            conn.flushdb()
        finally:
            conn.close()
        if redis_server is not None:
            redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
