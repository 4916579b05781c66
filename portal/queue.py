"""The RQ queue on the one Redis. Redis holds the queue; sync_runs holds the state."""
from __future__ import annotations

from flask import current_app
from redis import Redis
from rq import Queue, Worker


def redis_connection() -> Redis:
    app = current_app._get_current_object()
    conn = app.extensions.get("redis")
    if conn is None:
        conn = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=10)
        app.extensions["redis"] = conn
    return conn


def get_queue() -> Queue:
    return Queue(current_app.config["RQ_QUEUE"], connection=redis_connection())


def workers_for_queue(conn: Redis) -> int:
    return len(Worker.all(connection=conn, queue=Queue(current_app.config["RQ_QUEUE"], connection=conn)))


def scheduler_running(conn: Redis) -> bool:
    """Whether a worker started with ``--with-scheduler`` holds the queue's scheduler lock. Without
    one, RQ's delayed retries (``SYNC_RETRY_INTERVALS``) are never enqueued again."""
    from rq.scheduler import RQScheduler

    return bool(conn.exists(RQScheduler.get_locking_key(current_app.config["RQ_QUEUE"])))


def check_redis_policy(conn: Redis) -> str | None:
    """RQ must not lose jobs to eviction: Redis needs maxmemory-policy noeviction."""
    policy = conn.config_get("maxmemory-policy").get("maxmemory-policy")
    if policy != "noeviction":
        return f"Redis maxmemory-policy is {policy!r}; set it to 'noeviction' so queued jobs are never evicted"
    return None
