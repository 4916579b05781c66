"""From a blogger's rows to the xlsx files a sync uploads: stream → build → write, in chunks.

Used by the job (to push), by Preview and by Download xlsx (the exact file Sync would send), so
all three see the same documents. Each chunk is a file of at most ``chunk_size`` documents with
a deterministic Idempotency-Key (run, blogger, type, range, chunk, content): every retry of a run
resends the same key, so a lost answer is replayed, never duplicated; a new run gets new keys, so
AiAccount judges its documents afresh and reports the ones it holds as skipped duplicates.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import chain, count, islice
from typing import IO, Any

from .aiaccount import SYNC_TYPE_KINDS, write_xlsx
from .documents import BUILDERS, Mapping, Tally
from .sources import stream


@dataclass
class Chunk:
    index: int
    documents: int
    lines: int
    sha256: str
    idempotency_key: str
    file: IO[bytes]

    def data(self) -> bytes:
        self.file.seek(0)
        return self.file.read()


@dataclass
class Batch:
    sync_type: str
    kind: str
    tally: Tally
    chunks: list[Chunk] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def close(self) -> None:
        for chunk in self.chunks:
            chunk.file.close()


class _Clock:
    """Inclusive seconds spent pulling items through an iterator."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, iterable) -> Iterator[Any]:
        iterator = iter(iterable)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds += time.perf_counter() - started
                return
            self.seconds += time.perf_counter() - started
            yield item


def idempotency_key(run_id: int | None, blogger_id: int, sync_type: str, start: date, end: date, index: int,
                    sha256: str) -> str:
    run = f"r{run_id}" if run_id is not None else "preview"
    return f"ns16-{run}-b{blogger_id}-{sync_type}-{start:%Y%m%d}-{end:%Y%m%d}-c{index}-{sha256[:24]}"


def build_batch(sync_type: str, blogger_id: int, start: date, end: date, mapping: Mapping, *,
                run_id: int | None = None, chunk_size: int = 5000, on_chunk=None) -> Batch:
    """Build every document of the range into xlsx chunk files (temporary, closed by ``close``)."""
    kind = SYNC_TYPE_KINDS[sync_type]
    tally = Tally()
    query_clock, build_clock = _Clock(), _Clock()
    rows = query_clock.wrap(stream(sync_type, blogger_id, start, end))
    documents = build_clock.wrap(BUILDERS[sync_type](rows, mapping, tally))
    batch = Batch(sync_type, kind, tally)
    started = time.perf_counter()
    try:
        for index in count():
            first = next(documents, None)
            if first is None:
                break
            before = tally.documents - 1
            handle = tempfile.TemporaryFile()
            lines = write_xlsx(kind, chain(first, chain.from_iterable(islice(documents, chunk_size - 1))), handle)
            digest = _sha256(handle)
            batch.chunks.append(Chunk(index, tally.documents - before, lines, digest,
                                      idempotency_key(run_id, blogger_id, sync_type, start, end, index, digest), handle))
            if on_chunk is not None:
                on_chunk(batch)
    except BaseException:
        batch.close()
        raise
    total = time.perf_counter() - started
    batch.timings = {
        "query": round(query_clock.seconds, 4),
        "build": round(build_clock.seconds - query_clock.seconds, 4),
        "xlsx": round(total - build_clock.seconds, 4),
    }
    return batch


def _sha256(handle: IO[bytes]) -> str:
    handle.seek(0)
    return hashlib.file_digest(handle, "sha256").hexdigest()
