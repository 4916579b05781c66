"""Faults queued by the control surface for a company's next import requests."""
from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass

from simulator.company import normalize_name

FAULTS = ("server_error", "delay_after_commit", "reset", "rate_limit")


@dataclass(frozen=True)
class Fault:
    name: str
    delay: float = 1.0  # delay_after_commit: seconds slept after the commit
    retry_after: int = 1  # rate_limit: the Retry-After header


class Faults:
    """Thread-safe queues of faults per company (by normalized name)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: defaultdict[str, deque[Fault]] = defaultdict(deque)

    def add(self, company: str, fault: Fault, count: int) -> None:
        with self._lock:
            self._queues[normalize_name(company)].extend([fault] * count)

    def take(self, company: str) -> Fault | None:
        with self._lock:
            queue = self._queues.get(normalize_name(company))
            return queue.popleft() if queue else None

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
