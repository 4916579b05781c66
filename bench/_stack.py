"""Shared plumbing for the bench scripts: a throwaway portal stack on loopback.

``Stack`` makes a temp dir with a fresh SQLite database (``flask --app wsgi db upgrade``) — or, with
``database="postgres"``, a fresh PostgreSQL database ``bench_<name>_<pid>`` on ``BENCH_PG_URL``'s server,
dropped afterwards —, uses
Redis database 8 of ``REDIS_URL`` (flushed before and after; nothing else is touched), and starts
on demand the AiAccount simulator, RQ workers and gunicorn. Everything it starts is stopped by its
own pid in ``close()``. The bench scripts print figures; they are not tests.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/8")
QUEUE = "bench-aiaccount"
DEMO_LOGIN = ("blogger1@demo.test", "demo1234")


def test_master_keys() -> str:
    sys.path.insert(0, str(ROOT))
    from config import TestConfig

    return TestConfig.AIACCOUNT_MASTER_KEYS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited early with {process.returncode}")
        try:
            requests.get(url, timeout=0.5)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def flush_redis() -> None:
    from redis import Redis

    conn = Redis.from_url(REDIS_URL)
    conn.flushdb()  # only the bench database (8 by default)
    conn.close()


PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement)


class Stack:
    def __init__(self, name: str, database: str = "sqlite") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.db_path = self.dir / "portal.sqlite"
        self.processes: list[subprocess.Popen] = []
        self.sim_url = ""
        self.pg_database = ""
        if database == "postgres":
            from urllib.parse import urlsplit, urlunsplit

            self.pg_database = f"bench_{name}_{os.getpid()}"
            _pg_admin(f'CREATE DATABASE "{self.pg_database}"')
            parts = urlsplit(PG_URL)
            database_url = urlunsplit(("postgresql+psycopg", parts.netloc, "/" + self.pg_database, parts.query, ""))
        elif database == "sqlite":
            database_url = f"sqlite:///{self.db_path}"
        else:
            raise ValueError(f"database must be sqlite or postgres, not {database!r}")
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "RQ_QUEUE": QUEUE,
            "AIACCOUNT_MASTER_KEYS": test_master_keys(),
            "SECRET_KEY": "bench-not-secret",
            "PORTAL_ENV": "development",
        }
        flush_redis()
        self.flask("db", "upgrade")

    # Commands ---------------------------------------------------------------------------------

    def flask(self, *args: str) -> float:
        """Run ``flask --app wsgi ARGS``; return its wall seconds."""
        started = time.perf_counter()
        result = subprocess.run([str(VENV_BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return time.perf_counter() - started

    def seed(self, transactions: int | None = None) -> float:
        args = ["seed-demo"] + (["--transactions", str(transactions)] if transactions else [])
        return self.flask(*args)

    def app(self):
        """The portal app in this process, on the stack's database, Redis and keys."""
        from config import config_from_env
        from portal import create_app

        settings = {"SQLALCHEMY_DATABASE_URI": self.env["DATABASE_URL"], "REDIS_URL": REDIS_URL, "RQ_QUEUE": QUEUE,
                    "AIACCOUNT_MASTER_KEYS": self.env["AIACCOUNT_MASTER_KEYS"], "SECRET_KEY": self.env["SECRET_KEY"]}
        return create_app(type("BenchConfig", (config_from_env(),), settings))

    # Services ---------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (self.dir / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def start_simulator(self, *extra: str) -> str:
        port = free_port()
        process = self._spawn("simulator", [sys.executable, "-m", "simulator", "--port", str(port),
                                            "--db", str(self.dir / "simulator.sqlite"), "--max-upload-mb", "200",
                                            *extra])
        self.sim_url = f"http://127.0.0.1:{port}"
        wait_http(self.sim_url + "/healthz", process=process)
        self.env["AIACCOUNT_BASE_URL"] = self.sim_url
        return self.sim_url

    def start_workers(self, count: int) -> None:
        for n in range(count):
            self._spawn(f"worker{n}", [str(VENV_BIN / "rq"), "worker", "--url", REDIS_URL,
                                       "-w", "portal.worker.Worker", "--name", f"bench-{os.getpid()}-{n}", QUEUE])
        deadline = time.monotonic() + 20
        from redis import Redis
        from rq import Worker

        conn = Redis.from_url(REDIS_URL)
        while len(Worker.all(connection=conn)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("RQ workers did not register in 20 s")
            time.sleep(0.05)

    def start_gunicorn(self, workers: int = 2) -> str:
        port = free_port()
        process = self._spawn("gunicorn", [str(VENV_BIN / "gunicorn"), "--workers", str(workers),
                                           "--bind", f"127.0.0.1:{port}", "wsgi:app"])
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", process=process)
        return url

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        flush_redis()
        if self.pg_database:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)')
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def login(session: requests.Session, base_url: str, email: str = DEMO_LOGIN[0],
          password: str = DEMO_LOGIN[1]) -> None:
    """Log in through the real form (flask-wtf CSRF token read from the page)."""
    import re

    page = session.get(f"{base_url}/login", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    data = {"email": email, "password": password}
    if token:
        data["csrf_token"] = token.group(1)
    answer = session.post(f"{base_url}/login", data=data, timeout=10, allow_redirects=False)
    if answer.status_code not in (302, 303):
        raise RuntimeError(f"login as {email} failed: HTTP {answer.status_code}")


def result_line(**values: object) -> str:
    return "RESULT " + " ".join(f"{k}={v}" for k, v in values.items())
