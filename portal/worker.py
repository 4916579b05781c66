"""The RQ worker class: ``rq worker -w portal.worker.Worker <queue>``.

Builds the Flask app once in the worker's main process before it starts forking, so each job's
work horse inherits the imported modules and the app instead of paying ~1.5 s to build them.
No database or Redis connection is opened here: each forked job opens its own.
"""
from __future__ import annotations

import logging

from rq.worker import Worker as _RQWorker


class Worker(_RQWorker):
    def work(self, *args, **kwargs):
        from .jobs import _app

        _app()
        # RQ logs through its own handler; the app's root handler would print every line twice.
        logging.getLogger("rq").propagate = False
        return super().work(*args, **kwargs)
