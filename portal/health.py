"""GET /healthz: is the database, Redis, at least one worker and RQ's scheduler there.

503 unless all are: a portal whose syncs would stay queued (no worker) or whose retries would
never run (no worker started with ``--with-scheduler``) is not healthy."""
from __future__ import annotations

from flask import Blueprint, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db
from .queue import redis_connection, scheduler_running, workers_for_queue

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    checks: dict[str, dict] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except SQLAlchemyError as exc:
        db.session.rollback()
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        conn = redis_connection()
        conn.ping()
        checks["redis"] = {"ok": True}
        count = workers_for_queue(conn)
        checks["worker"] = {"ok": count > 0, "count": count}
        checks["scheduler"] = {"ok": scheduler_running(conn)}
    except RedisError as exc:
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
        checks["worker"] = {"ok": False, "count": 0}
        checks["scheduler"] = {"ok": False}
    if not checks["scheduler"]["ok"]:
        checks["scheduler"]["hint"] = "start one worker with: rq worker --with-scheduler (retries wait for it)"
    ok = all(check["ok"] for check in checks.values())
    return jsonify(ok=ok, checks=checks), 200 if ok else 503
