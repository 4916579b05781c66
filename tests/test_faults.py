"""Faults with the real processes: `rq worker` subprocesses, real Redis, the simulator over HTTP.

Every test ends the same way: the run is in a clear final state (never left 'running'), the page
says so, a new Sync converges (created + skipped == documents) and AiAccount holds exactly one
copy of every document, none missing. docs/faults.md says what each fault simulates.
"""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone

import pytest
from redis import Redis
from rq.exceptions import DuplicateJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from bench.faults import FaultLoop
from portal.credentials import set_credential
from portal.extensions import db
from portal.models import Blogger, SyncRun
from portal.queue import get_queue
from portal.syncs import SyncRequestError, reap_stale_runs, request_sync
from tests.plugin_simulator import HEALTHY
from tests.plugin_stack import ROOT, worker_env

pytestmark = pytest.mark.slow

MYT = timezone(timedelta(hours=8))
DAY = date(2026, 5, 14)
KIND = "sales-invoice"
TYPE = "pos_invoice"
FINAL = ("succeeded", "failed", "no_data")


@pytest.fixture
def app_overrides(stack_overrides):
    return stack_overrides


# helpers -------------------------------------------------------------------------------------


def connected_blogger(factories, company=HEALTHY):
    blogger = factories.make_blogger()
    set_credential(blogger, company.name, company.key, actor=None)
    db.session.commit()
    return blogger


def make_sales(factories, blogger, count: int) -> set[str]:
    """``count`` POS sales on DAY; returns their receipt numbers (the invoice numbers pushed)."""
    numbers = set()
    for i in range(count):
        at = datetime(DAY.year, DAY.month, DAY.day, 9, i, tzinfo=MYT).astimezone(timezone.utc)
        numbers.add(factories.make_sale(blogger, at).receipt_no)
    db.session.commit()
    return numbers


def sync(blogger, sync_type: str = TYPE) -> int:
    run, created = request_sync(blogger, sync_type, DAY, DAY)
    assert created, (run.status, run.error_code)
    return run.id


def fresh(run_id: int) -> SyncRun:
    """The row as the worker left it (end the test's snapshot first)."""
    db.session.rollback()
    return db.session.get(SyncRun, run_id)


def wait_until(predicate, timeout: float, what: str, stack=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    logs = f"\n{stack.logs()}" if stack is not None else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what}{logs}")


def wait_final(run_id: int, stack, timeout: float = 20.0) -> SyncRun:
    return wait_until(lambda: (run := fresh(run_id)).status in FINAL and run, timeout,
                      f"run {run_id} to end", stack)


def imports_posted(sim, company=HEALTHY) -> list[dict]:
    return [r for r in sim.requests_log() if r["method"] == "POST" and r["path"].startswith("/api/v1/imports/")
            and r["company"] == company.name]


def assert_exactly_once(sim, numbers: set[str], company=HEALTHY, kind: str = KIND) -> None:
    documents = sim.documents(company, kind)
    held = [d["number"] for d in documents]
    assert all(d["copies"] == 1 for d in documents), [d for d in documents if d["copies"] != 1]
    assert sorted(held) == sorted(numbers), f"lost {numbers - set(held)}, extra {set(held) - numbers}"


def converge(blogger, stack, documents: int) -> SyncRun:
    """A new Sync after the fault: succeeds and accounts for every document."""
    run = wait_final(sync(blogger), stack)
    assert run.status == "succeeded", (run.error_code, run.error_message)
    assert run.created_count + run.skipped_count == documents == run.row_count
    return run


def pill(client, auth, blogger, sync_type: str = TYPE) -> str:
    auth.login(blogger.user.email)
    response = client.get(f"/finance/aiaccount-sync/{sync_type}/pill")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def use_redis(app, url: str) -> Redis:
    """Point the test app (enqueue, reaper) at another Redis."""
    app.config["REDIS_URL"] = url
    app.extensions.pop("redis", None)
    return Redis.from_url(url)


# 1. worker kill -9 in the middle of a push ---------------------------------------------------


def test_worker_killed_mid_push_is_reaped_and_a_resync_converges(app_ctx, factories, sim, stack, client, auth):
    blogger = connected_blogger(factories)
    numbers = make_sales(factories, blogger, 5)
    # Three chunks of 2, 2, 1 documents; each answer is held back 1 s after AiAccount committed.
    worker = stack.worker(AIACCOUNT_TIMEOUT=5, SYNC_CHUNK_DOCUMENTS=2)
    sim.fault(HEALTHY, "delay_after_commit", count=3, delay=1.0)
    run_id = sync(blogger)
    # Chunk 2 is committed and the worker is waiting for its answer: kill the worker's group.
    wait_until(lambda: len(sim.documents(HEALTHY, KIND)) >= 4, 20, "chunk 2 committed", stack)
    worker.kill9()
    run = fresh(run_id)
    assert run.status == "running" and run.created_count == 2  # chunk 1 recorded, chunk 2 never heard
    assert reap_stale_runs() == {"failed": 0, "requeued": 0}  # a live heartbeat is left alone
    time.sleep(app_ctx.config["SYNC_STALE_SECONDS"] + 0.5)
    assert reap_stale_runs() == {"failed": 1, "requeued": 0}
    run = fresh(run_id)
    assert (run.status, run.error_code) == ("failed", "worker_lost")
    assert "never duplicated" in run.error_hint
    page = pill(client, auth, blogger)
    assert "Failed" in page and "The sync stopped before it finished" in page and "hx-trigger" not in page

    sim.control("DELETE", "faults")
    stack.worker()
    again = converge(blogger, stack, 5)
    assert (again.created_count, again.skipped_count) == (1, 4)  # only chunk 3 was missing
    assert_exactly_once(sim, numbers)


# 2. simulator 5xx ----------------------------------------------------------------------------


def test_5xx_is_retried_inside_the_request_with_the_same_key(app_ctx, factories, sim, stack):
    blogger = connected_blogger(factories)
    numbers = make_sales(factories, blogger, 3)
    sim.fault(HEALTHY, "server_error", count=2)  # AIACCOUNT_MAX_RETRIES=2: the third try passes
    stack.worker()
    run = wait_final(sync(blogger), stack)
    assert (run.status, run.attempts, run.created_count) == ("succeeded", 1, 3)
    posts = imports_posted(sim)
    assert [p["status"] for p in posts] == [500, 500, 200]
    assert len({p["idempotency_key"] for p in posts}) == 1
    assert_exactly_once(sim, numbers)
    converge(blogger, stack, 3)
    assert_exactly_once(sim, numbers)


def test_rq_retry_waits_for_a_worker_running_the_scheduler(app_ctx, factories, sim, stack, client, auth):
    blogger = connected_blogger(factories)
    numbers = make_sales(factories, blogger, 3)
    sim.fault(HEALTHY, "server_error", count=3)  # every try of the first attempt fails
    stack.worker()  # no scheduler
    run_id = sync(blogger)
    run = wait_until(lambda: (r := fresh(run_id)).error_code == "server_error" and r, 15, "attempt 1", stack)
    assert run.status == "queued"
    job = Job.fetch(f"sync-run-{run_id}", connection=get_queue().connection)
    wait_until(lambda: job.get_status() == "scheduled", 5, "the retry to be scheduled", stack)
    assert job.id in ScheduledJobRegistry(queue=get_queue())
    time.sleep(1.5)  # past the 1 s retry interval: without a scheduler nothing enqueues it
    assert job.get_status() == "scheduled" and fresh(run_id).status == "queued"
    page = pill(client, auth, blogger)
    assert "Queued" in page and "Retrying after: AiAccount server error" in page and "hx-trigger" in page
    health = client.get("/healthz")  # the operator is told what is missing
    assert health.status_code == 503 and health.get_json()["checks"]["worker"] == {"ok": True, "count": 1}
    assert "--with-scheduler" in health.get_json()["checks"]["scheduler"]["hint"]

    stack.worker(scheduler=True)
    wait_until(lambda: client.get("/healthz").get_json()["checks"]["scheduler"]["ok"], 10, "the scheduler", stack)
    run = wait_final(run_id, stack)
    assert (run.status, run.attempts, run.error_code) == ("succeeded", 2, None)
    assert [p["status"] for p in imports_posted(sim)] == [500, 500, 500, 200]
    assert_exactly_once(sim, numbers)
    converge(blogger, stack, 3)
    assert_exactly_once(sim, numbers)


def test_5xx_past_every_retry_fails_with_retry_later(app_ctx, factories, sim, stack, client, auth):
    blogger = connected_blogger(factories)
    numbers = make_sales(factories, blogger, 3)
    sim.fault(HEALTHY, "server_error", count=6)  # 3 tries x (1 attempt + 1 RQ retry)
    stack.worker(scheduler=True)
    run = wait_final(sync(blogger), stack)
    assert (run.status, run.error_code, run.attempts) == ("failed", "server_error", 2)
    assert run.error_hint == "Temporary — retry later"
    assert sim.documents(HEALTHY, KIND) == []
    page = pill(client, auth, blogger)
    assert "Failed" in page and "AiAccount server error" in page and "retry later" in page
    again = converge(blogger, stack, 3)
    assert again.created_count == 3
    assert_exactly_once(sim, numbers)


# 3. the answer is lost after AiAccount committed ---------------------------------------------


def test_answer_delayed_past_the_timeout_after_commit_is_replayed(app_ctx, factories, sim, stack):
    blogger = connected_blogger(factories)
    numbers = make_sales(factories, blogger, 4)
    sim.fault(HEALTHY, "delay_after_commit", delay=2.5)  # the worker gives up after 1 s
    stack.worker()
    run = wait_final(sync(blogger), stack)
    assert (run.status, run.attempts, run.created_count, run.skipped_count) == ("succeeded", 1, 4, 0)
    posts = wait_until(lambda: len(p := imports_posted(sim)) == 2 and p, 5, "both requests logged")
    assert len({p["idempotency_key"] for p in posts}) == 1  # the retry replayed the committed import
    assert {p["fault"] for p in posts} == {"delay_after_commit", None}
    assert_exactly_once(sim, numbers)
    again = converge(blogger, stack, 4)
    assert (again.created_count, again.skipped_count) == (0, 4)
    assert_exactly_once(sim, numbers)


# 4. connection reset -------------------------------------------------------------------------


def test_connection_reset_is_retried_until_it_passes(app_ctx, factories, sim, stack):
    blogger = connected_blogger(factories)
    numbers = make_sales(factories, blogger, 3)
    sim.fault(HEALTHY, "reset", count=3)  # the whole first attempt, then one RQ retry
    stack.worker(scheduler=True)
    run = wait_final(sync(blogger), stack)
    assert (run.status, run.attempts, run.created_count) == ("succeeded", 2, 3)
    posts = imports_posted(sim)
    assert [p["fault"] for p in posts] == ["reset", "reset", "reset", None]
    assert len({p["idempotency_key"] for p in posts}) == 1
    assert_exactly_once(sim, numbers)
    converge(blogger, stack, 3)
    assert_exactly_once(sim, numbers)


# 5 + 6. the queue loses a waiting job --------------------------------------------------------


@pytest.mark.parametrize("loss", ["restart", "flushall"])
def test_queue_losing_a_waiting_job_is_reconciled_from_the_database(app, app_ctx, factories, sim, stack, loss,
                                                                     client, auth):
    redis = stack.redis_server()  # throwaway: FLUSHALL and restarts never touch the shared Redis
    conn = use_redis(app, redis.url)
    busy, blogger = connected_blogger(factories), connected_blogger(factories)
    numbers = make_sales(factories, busy, 1) | make_sales(factories, blogger, 3)
    worker = stack.worker(redis_url=redis.url, AIACCOUNT_TIMEOUT=5)
    # The only worker is busy inside a 2 s upload, so the second run waits in the queue.
    sim.fault(HEALTHY, "delay_after_commit", delay=2.0)
    busy_id = sync(busy)
    wait_until(lambda: sim.documents(HEALTHY, KIND), 15, "the busy import to commit", stack)
    clicked = time.monotonic()
    run_id = sync(blogger)
    assert time.monotonic() - clicked < 1.0  # the upload in progress holds no database lock
    assert get_queue().job_ids == [f"sync-run-{run_id}"]
    if loss == "restart":
        redis.stop()
        with pytest.raises(SyncRequestError) as info:  # meanwhile a Sync fails clearly, never stuck
            request_sync(blogger, "kol_bill", DAY, DAY)
        assert info.value.code == "queue_unavailable"
        lost = db.session.scalar(select(SyncRun).where(SyncRun.sync_type == "kol_bill"))
        assert (lost.status, lost.error_code) == ("failed", "queue_unavailable")
        redis.start()  # same port, nothing persisted: an empty Redis
    else:
        conn.flushall()
    assert get_queue().count == 0 and fresh(run_id).status == "queued"
    assert wait_final(busy_id, stack).status == "succeeded"  # the busy run finished regardless
    assert reap_stale_runs() == {"failed": 0, "requeued": 0}  # a fresh run gets 60 s to be enqueued
    assert fresh(run_id).status == "queued"
    assert reap_stale_runs(requeue_after=0) == {"failed": 0, "requeued": 1}
    run = wait_final(run_id, stack)
    assert worker.alive(), worker.log_tail()  # the same worker lived through the loss
    assert (run.status, run.created_count) == ("succeeded", 3)
    assert "Last sync" in pill(client, auth, blogger)
    assert_exactly_once(sim, numbers)
    converge(blogger, stack, 3)
    assert_exactly_once(sim, numbers)
    conn.close()


# 7. the database briefly unavailable ---------------------------------------------------------


def test_database_briefly_unavailable_during_the_upload(app_ctx, factories, sim, stack, _schema, client, auth):
    blogger = connected_blogger(factories)
    numbers = make_sales(factories, blogger, 3)
    stack.worker(AIACCOUNT_TIMEOUT=5)  # no scheduler: the RQ retry of the failed job stays parked
    sim.fault(HEALTHY, "delay_after_commit", delay=1.0)
    run_id = sync(blogger)
    db.session.rollback()  # the test holds no connection while the database goes away
    wait_until(lambda: sim.documents(HEALTHY, KIND), 15, "the import committed", stack)
    # The worker now waits 1 s for AiAccount's answer, then must record the outcome.
    url = make_url(_schema)
    if url.get_backend_name() == "sqlite":
        # Another writer holds the file's write lock for 3 s (a backup, a long migration step):
        # the worker's writes wait (busy_timeout 10 s) and go through.
        lock = sqlite3.connect(url.database, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        time.sleep(3.0)
        lock.execute("ROLLBACK")
        lock.close()
        run = wait_final(run_id, stack)
        assert (run.status, run.error_code) == ("succeeded", None)
    else:
        # PostgreSQL goes away for 3 s (a restart or fail-over): every connection to the database is
        # cut and new ones are refused, so the worker can neither record success nor failure.
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false'))
            try:
                cut = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                        " WHERE datname = :name"), {"name": url.database}).scalar()
                time.sleep(3.0)
            finally:
                conn.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true'))
        admin.dispose()
        assert cut >= 1
        run = fresh(run_id)
        assert run.status == "running"  # nobody could write its end; the reaper does
        job = Job.fetch(f"sync-run-{run_id}", connection=get_queue().connection)
        assert job.get_status() == "scheduled"  # RQ retries the job that raised
        time.sleep(app_ctx.config["SYNC_STALE_SECONDS"])
        assert reap_stale_runs() == {"failed": 1, "requeued": 0}
        run = fresh(run_id)
        assert (run.status, run.error_code) == ("failed", "worker_lost")
        assert "Failed" in pill(client, auth, blogger)
    assert_exactly_once(sim, numbers)
    again = converge(blogger, stack, 3)
    assert (again.created_count, again.skipped_count) == (0, 3)
    assert_exactly_once(sim, numbers)


# 8. one push per blogger + type, whatever RQ holds -------------------------------------------


def test_the_database_refuses_a_second_active_run_without_any_rq_job(app, app_ctx, factories):
    blogger = connected_blogger(factories)
    # RQ's job ids are no lock: the same id can be enqueued twice while the first is waiting...
    queue = get_queue()
    queue.enqueue("portal.jobs.run_sync", 1, job_id="sync-run-same")
    queue.enqueue("portal.jobs.run_sync", 1, job_id="sync-run-same")
    assert queue.job_ids == ["sync-run-same", "sync-run-same"]
    queue.empty()
    # ...and `unique=True` holds only while the job exists: once it is gone (finished and expired,
    # flushed, restarted away) the same id is accepted again.
    queue.enqueue("portal.jobs.run_sync", 1, job_id="sync-run-once", unique=True)
    with pytest.raises(DuplicateJobError):
        queue.enqueue("portal.jobs.run_sync", 1, job_id="sync-run-once", unique=True)
    Job.fetch("sync-run-once", connection=queue.connection).delete()
    queue.enqueue("portal.jobs.run_sync", 1, job_id="sync-run-once", unique=True)
    queue.empty()

    db.session.add(SyncRun(blogger_id=blogger.id, sync_type="kol_bill", start_date=DAY, end_date=DAY,
                           status="running"))
    db.session.commit()
    db.session.add(SyncRun(blogger_id=blogger.id, sync_type="kol_bill", start_date=DAY, end_date=DAY,
                           status="queued"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()

    # Eight requests race for one blogger + type: one run, one job.
    blogger_id, barrier, results, errors = blogger.id, threading.Barrier(8), [], []

    def click():
        with app.app_context():
            try:
                someone = db.session.get(Blogger, blogger_id)
                barrier.wait(timeout=10)
                run, created = request_sync(someone, TYPE, DAY, DAY)
                results.append((run.id, created))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert sum(created for _, created in results) == 1 and len({run_id for run_id, _ in results}) == 1
    assert get_queue().count == 1


# 9. RQ re-running a job that already finished -------------------------------------------------


def test_a_finished_job_that_rq_marks_abandoned_does_not_push_again(app_ctx, factories, sim, stack):
    blogger = connected_blogger(factories)
    numbers = make_sales(factories, blogger, 3)
    stack.worker(scheduler=True)
    run_id = sync(blogger)
    assert wait_final(run_id, stack).status == "succeeded"
    before = len(sim.requests_log())
    queue = get_queue()
    job = Job.fetch(f"sync-run-{run_id}", connection=queue.connection)
    wait_until(lambda: job.get_status() == "finished", 5, "RQ to finish the job")
    # The job is left in the started registry with a heartbeat that ran out, as if its worker had
    # died after the push; RQ's cleanup calls it abandoned and, retries being left, runs it again.
    registry = StartedJobRegistry(queue=queue)
    queue.connection.zadd(registry.key, {f"{job.id}:lost-execution": 1})
    registry.cleanup()

    def ran_again() -> bool:
        job.refresh()
        return job.get_status() == "finished" and job.retries_left == 0

    wait_until(ran_again, 10, "RQ to re-run the job", stack)
    assert len(sim.requests_log()) == before
    run = fresh(run_id)
    assert (run.status, run.attempts) == ("succeeded", 1)
    assert_exactly_once(sim, numbers)


# 10. Redis must not evict jobs -----------------------------------------------------------------


@pytest.mark.parametrize("policy,ok", [("allkeys-lru", False), ("noeviction", True)])
def test_check_services_refuses_an_evicting_redis(stack, _schema, policy, ok):
    redis = stack.redis_server(policy)
    env = worker_env(_schema, redis.url, stack.queue, stack.simulator_url)
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "check-services"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
        assert "Database and Redis OK" in result.stdout
    else:
        assert result.returncode == 1
        assert ("REDIS_URL: Redis maxmemory-policy is 'allkeys-lru'; set it to 'noeviction' so queued jobs "
                "are never evicted") in result.stderr


# 11. the bench's randomized loop, short ----------------------------------------------------------


def test_randomized_faulted_pushes(app, app_ctx, sim, stack):
    loop = FaultLoop(app, sim, stack, seed=7, bloggers=3, kills=True)
    result = loop.run(pushes=15, deadline=60)
    assert result.pushes == 15, result
    assert (result.duplicates, result.lost) == (0, 0), result
