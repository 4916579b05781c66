"""The RQ worker class: ``rq worker -w portal.worker.Worker <queue>``.

Builds the Flask app once in the worker's main process before it starts forking, so each job's
work horse inherits the imported modules and the app instead of paying ~1.5 s to build them.
No database or Redis connection is opened here: each forked job opens its own.
"""
from __future__ import annotations

import gc
import logging

from flask import Flask
from rq.worker import Worker as _RQWorker


def preload() -> Flask:
    """What a work horse should find ready: the app built, and everything alive at this point
    (~120,000 objects: Flask, SQLAlchemy, Babel, the app) moved out of the garbage collector's
    sight with ``gc.freeze()``. A job allocates hundreds of thousands of objects; without the
    freeze each of the collections that triggers walks the whole framework again (~14 % of a
    sync's time, docs/performance.md). It also keeps a forked horse from touching, and so
    copying, the parent's memory pages just to collect — the use the ``gc`` docs give for it."""
    from .jobs import _app

    app = _app()
    gc.collect()
    gc.freeze()
    return app


class Worker(_RQWorker):
    def work(self, *args, **kwargs):
        preload()
        # RQ logs through its own handler; the app's root handler would print every line twice.
        logging.getLogger("rq").propagate = False
        return super().work(*args, **kwargs)
