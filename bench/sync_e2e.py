"""End-to-end sync bench: ``python bench/sync_e2e.py --transactions 10000``.

Seeds blogger 1 with ``seed-demo --transactions N`` into a temp SQLite database (``--database
postgres``: a temp PostgreSQL database on BENCH_PG_URL's server), starts the
AiAccount simulator, then in a fresh subprocess enqueues POS Sales Invoice and POS Sales Receipt
through ``request_sync`` and runs each job with an RQ ``SimpleWorker`` (the real job code, the real
client, the simulator over HTTP). Prints seconds per phase, rows/s, the SQL query count of each job
(a ``before_cursor_execute`` listener) and the subprocess's peak RSS (``ru_maxrss``).

A second fresh subprocess measures the floor: the same lines, already built and converted, written
to the same chunk files with bare xlsxwriter (the mode the portal uses, one typed call per cell, no
portal code) — and how fast the simulator's reader + validator get through those files. Both child
processes start as an RQ work horse does (``portal.worker.preload()``: the app built, then frozen
for the garbage collector).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import ROOT, Stack, result_line  # noqa: E402

TYPES = ("pos_invoice", "pos_receipt")


def _app():
    """The app as a work horse of ``portal.worker.Worker`` finds it: built, and frozen for the GC."""
    from portal.worker import preload

    return preload()


def _range():
    from datetime import timedelta

    from portal.timeutil import myt_today

    today = myt_today()
    return today - timedelta(days=60), today - timedelta(days=1)


def child_sync() -> dict:
    """Both syncs through the queue and the job code; figures of this process only."""
    from rq import SimpleWorker
    from rq.registry import FinishedJobRegistry
    from sqlalchemy import event

    from portal.extensions import db
    from portal.models import Blogger, SyncRun
    from portal.queue import get_queue, redis_connection
    from portal.syncs import request_sync

    app = _app()
    out: dict = {"types": {}}
    with app.app_context():
        queries = {"n": 0}

        @event.listens_for(db.engine, "before_cursor_execute")
        def _count(*_args):
            queries["n"] += 1

        start, end = _range()
        blogger = db.session.get(Blogger, 1)
        queue = get_queue()
        total_started = time.perf_counter()
        for sync_type in TYPES:
            started = time.perf_counter()
            run, created = request_sync(blogger, sync_type, start, end, trigger="user")
            assert created, "a run was already under way"
            before = queries["n"]
            SimpleWorker([queue], connection=redis_connection()).work(burst=True)
            job_queries = queries["n"] - before
            db.session.expire_all()
            run = db.session.get(SyncRun, run.id)
            timings = json.loads(run.phase_timings or "{}")
            out["types"][sync_type] = {
                "status": run.status, "error": run.error_code, "documents": run.row_count,
                "lines": run.line_count, "created": run.created_count, "skipped": run.skipped_count,
                "timings": {k: v for k, v in timings.items() if k != "imports"},
                "chunks": len(timings.get("imports", [])), "queries": job_queries,
                "seconds": round(time.perf_counter() - started, 3),
            }
        out["seconds"] = round(time.perf_counter() - total_started, 3)
        out["jobs"] = FinishedJobRegistry(queue=queue).count
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def child_floor() -> dict:
    """Bare xlsxwriter on the same lines (built and converted beforehand, not timed), then the
    simulator's reader and validator on the files written."""
    from datetime import date
    from itertools import chain, islice

    import xlsxwriter

    from portal.aiaccount import COLUMNS, SYNC_TYPE_KINDS
    from portal.aiaccount.xlsx import column_types
    from portal.documents import BUILDERS, Mapping, Tally
    from portal.extensions import db
    from portal.models import Blogger
    from portal.sources import stream
    from simulator.seed import demo_companies
    from simulator.validate import read_rows, validate

    app = _app()
    start, end = _range()
    company = next(c for c, _key in demo_companies(end) if c.name == "Blogger One Trading")
    epoch = date(1899, 12, 30)
    out: dict = {"types": {}}
    with app.app_context():
        blogger = db.session.get(Blogger, 1)
        mapping = Mapping.from_settings(blogger.settings)
        chunk_size = app.config["SYNC_CHUNK_DOCUMENTS"]
        for sync_type in TYPES:
            kind = SYNC_TYPE_KINDS[sync_type]
            types = column_types(kind)
            documents = BUILDERS[sync_type](stream(sync_type, blogger.id, start, end), mapping, Tally())
            chunks = []
            while True:
                docs = list(islice(documents, chunk_size))
                if not docs:
                    break
                chunks.append([tuple(
                    (v - epoch).days if t == "date" else float(v) if t in ("money", "qty") else v
                    for v, t in zip(line, types)) for line in chain.from_iterable(docs)])
            numeric = [(c, t) for c, t in enumerate(types) if t != "text"]
            text = [c for c, t in enumerate(types) if t == "text"]
            files, lines = [], 0
            started = time.perf_counter()
            for rows in chunks:
                handle = tempfile.TemporaryFile()
                book = xlsxwriter.Workbook(handle)  # the portal's mode: shared strings
                sheet = book.add_worksheet(kind)
                formats = {t: book.add_format({"num_format": f}) for t, f in
                           (("date", "yyyy-mm-dd"), ("money", "0.00"), ("qty", "0.000"))}
                num = [(c, formats[t]) for c, t in numeric]
                for col, name in enumerate(COLUMNS[kind]):
                    sheet.write_string(0, col, name)
                write_string, write_number = sheet.write_string, sheet.write_number
                for r, row in enumerate(rows, start=1):
                    for c in text:
                        if row[c]:
                            write_string(r, c, row[c])
                    for c, fmt in num:
                        write_number(r, c, row[c], fmt)
                book.close()
                vars(sheet).pop("workbook_add_format", None)  # as write_xlsx does: no cyclic garbage
                files.append(handle)
                lines += len(rows)
            floor = time.perf_counter() - started
            started = time.perf_counter()
            for handle in files:
                handle.seek(0)
                n, _docs, errors = validate(kind, read_rows(handle.read()), company, lambda _kind, ids: set(ids))
                assert not errors, errors[:3]
                handle.close()
            parse = time.perf_counter() - started
            out["types"][sync_type] = {"lines": lines, "floor_seconds": round(floor, 3),
                                       "simulator_parse_seconds": round(parse, 3)}
    return out


def run_child(stack: Stack, which: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", which], cwd=ROOT, env=stack.env,
                            capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"child {which} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=10_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                        help="sqlite (a temp file) or postgres (a temp database on BENCH_PG_URL's server)")
    parser.add_argument("--child", choices=("sync", "floor"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_sync() if args.child == "sync" else child_floor()))
        return 0

    n = args.transactions
    with Stack("sync", args.database) as stack:
        seed_seconds = stack.seed(n)
        stack.start_simulator()
        sync = run_child(stack, "sync")
        floor = run_child(stack, "floor")

    print(f"sync_e2e: {n} transactions on {args.database}, seed {seed_seconds:.1f} s, {os.cpu_count()} cores")
    portal = floor_total = parse_total = 0.0
    lines_total = 0
    for sync_type in TYPES:
        s, f = sync["types"][sync_type], floor["types"][sync_type]
        t = s["timings"]
        own = t.get("query", 0) + t.get("build", 0) + t.get("xlsx", 0)
        portal += own
        floor_total += f["floor_seconds"]
        parse_total += f["simulator_parse_seconds"]
        lines_total += s["lines"] or 0
        print(f"  {sync_type}: {s['status']} {s['documents']} documents / {s['lines']} lines in {s['chunks']} "
              f"chunk(s), job {s['seconds']} s, {s['queries']} SQL queries")
        print(f"    query {t.get('query')} s  build {t.get('build')} s  xlsx {t.get('xlsx')} s  "
              f"preflight {t.get('preflight')} s  upload+ack {t.get('upload')} s  (job total {t.get('total')} s)")
        print(f"    portal part {own:.3f} s = {s['lines'] / own:,.0f} lines/s; floor (bare xlsxwriter) "
              f"{f['floor_seconds']} s; simulator read+validate {f['simulator_parse_seconds']} s "
              f"= {f['lines'] / f['simulator_parse_seconds']:,.0f} lines/s")
    queries = sum(sync["types"][t]["queries"] for t in TYPES)
    print(f"  both: {sync['seconds']} s end to end ({lines_total / sync['seconds']:,.0f} lines/s), "
          f"jobs {sync['jobs']}, portal part {portal:.3f} s vs floor {floor_total:.3f} s, "
          f"simulator parse {parse_total:.3f} s, peak RSS {sync['peak_rss_mb']} MB")
    print(result_line(transactions=n, database=args.database, seconds=sync["seconds"], floor_seconds=round(floor_total, 3),
                      ratio=round(portal / floor_total, 3), peak_rss_mb=sync["peak_rss_mb"], queries=queries,
                      portal_seconds=round(portal, 3), simulator_parse_seconds=round(parse_total, 3),
                      rows_per_s=round(lines_total / sync["seconds"]), seed_seconds=round(seed_seconds, 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
