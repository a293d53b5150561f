"""Preparing landing files (read, standardise, tokenise, encrypt) ahead of the one writer.

Preparing a file is most of an ingest's CPU and needs no warehouse: it is pure
Polars and Python over the file's bytes (:func:`prepare_file`). DuckDB allows one
writer, so the writer stays in the run's process and writes the files in order,
while the next files are prepared in worker processes on the other cores
(:class:`Preparer`). What comes back from a worker is what the warehouse will hold:
tokens, ciphertext, masks, redacted quarantine rows. The plaintext of a file never
leaves the worker that read it.

A worker hands its staged rows over as an uncompressed Arrow IPC file in a spool
folder, not through the process pool's pipe: pickling a 1.7M-row Tmall delivery
(870 MB) cost the worker 3.9 CPU-s and the writer 1.6 s to unpickle, where writing
the IPC file costs 1.3 CPU-s and reading it back (into one chunk per column) 0.9 s.
The spool folder sits beside the build warehouse (removed with it if a run is killed)
and holds no plaintext.

Starting a worker process costs about a second (it imports Polars, DuckDB,
phonenumbers, OpenCC), so small deliveries are prepared in-process.
``SCV_INGEST_WORKERS`` sets the number of workers (default: one per core; ``0``
prepares everything in-process).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import polars as pl

from assets.landing.formats import BY_TYPE, FileFormat
from assets.landing.readers import Rejected, read_file
from assets.landing.stage import stage_frame
from privacy import crypto
from privacy.keys import Keyring

# Below this many bytes of new landing files, starting worker processes costs more than it saves.
PARALLEL_BYTES = 32 << 20
MAX_WORKERS = 4  # each worker holds a whole staged file: more would cost memory, not time, on small boxes


@dataclass
class Prepared:
    """One landing file, read and staged: rows for the warehouse and rows for quarantine."""

    good: pl.DataFrame  # staging rows (no plaintext personal data)
    bad: pl.DataFrame  # rows the staging rules rejected: _line, reason, redacted raw
    rejected: list[Rejected]  # rows the reader rejected, redacted
    delivered: int
    missing_columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # read, stage and its parts (STAGE_PARTS)
    in_worker: bool = False
    spooled: Path | None = None  # where a worker left ``good`` (an Arrow IPC file) until the writer loads it

    def load_spooled(self) -> Prepared:
        """Read ``good`` back from the worker's spool file (and remove the file)."""
        if self.spooled is not None:
            # one chunk per column, as the frame left the worker: DuckDB scans the file's many record
            # batches more slowly (the 1.7M-row Tmall delivery: merge 3.8-6.2 s, 3.4-3.6 s rechunked)
            self.good = pl.read_ipc(self.spooled).rechunk()
            self.spooled.unlink()
            self.spooled = None
        return self


def prepare_file(path: Path, fmt: FileFormat, keyring: Keyring) -> Prepared:
    """Read one landing file and stage its rows; raises what the reader or staging raises."""
    start = time.perf_counter()
    read = read_file(path, fmt)
    read_done = time.perf_counter()
    seconds = {"read": read_done - start}
    good, bad = stage_frame(read.frame, fmt, keyring, seconds)
    seconds["stage"] = time.perf_counter() - read_done
    return Prepared(good, bad, read.rejected, read.delivered, read.missing_columns, read.extra_columns, seconds)


def _prepare_in_worker(path: Path, record_type: str, keyring: Keyring, spool: Path) -> Prepared:
    prepared = prepare_file(path, BY_TYPE[record_type], keyring)
    prepared.in_worker = True
    prepared.spooled = spool / f"{uuid.uuid4().hex}.arrow"
    prepared.good.write_ipc(prepared.spooled)
    prepared.good = prepared.good.clear()  # only the schema travels through the pipe
    return prepared


def _worker_setup() -> None:
    # the preparers already occupy every core: a worker encrypts in its own process
    crypto.ENCRYPT_WORKERS = 1


def worker_count(new_bytes: int) -> int:
    """How many worker processes to prepare ``new_bytes`` of landing files with (0: in-process)."""
    configured = os.environ.get("SCV_INGEST_WORKERS")
    if configured:
        return max(0, int(configured))
    if new_bytes < PARALLEL_BYTES:
        return 0
    return max(0, min(os.cpu_count() or 1, MAX_WORKERS))


class Preparer:
    """Yields the files to write, each with what prepares it, while worker processes prepare ahead.

    Within a record type files come in the order given (later deliveries overwrite earlier
    ones); across types, whichever type's next file is ready first comes first, so the
    writer rarely waits. Workers start on the largest files first, and at most
    ``workers`` prepared files wait in memory at a time, which keeps the peak near the
    in-process one. Files not in ``new`` (new files and their sizes in bytes; the others the
    ledger already knows) and every file
    when ``workers`` is 0 are prepared in-process, only if the writer asks. A worker that
    dies (the operating system killed it) does not lose its file: it is prepared in-process.
    Workers spool their staged rows in a folder made under ``spool_dir`` (default: the
    system's temporary folder), removed on :meth:`close`.
    """

    def __init__(self, files: Sequence[tuple[FileFormat, Path]], new: Mapping[Path, int], keyring: Keyring,
                 workers: int, spool_dir: Path | None = None) -> None:
        self.keyring = keyring
        self.queues: dict[str, deque[tuple[FileFormat, Path]]] = {}
        for fmt, path in files:
            self.queues.setdefault(fmt.record_type, deque()).append((fmt, path))
        self.pending = _largest_first(files, new) if workers else []
        self.waiting = {path for _, path in self.pending}  # to be prepared by a worker
        self.futures: dict[Path, Future] = {}
        self.ahead = workers + 1  # one ready beyond those being prepared, so no worker idles
        self.pool = self.spool = None
        if self.pending:
            self.spool = Path(tempfile.mkdtemp(prefix="prepared-", dir=spool_dir))
            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_worker_setup)

    def _fill(self) -> None:
        while self.pending and len(self.futures) < self.ahead:
            fmt, path = self.pending.pop(0)
            self.futures[path] = self.pool.submit(_prepare_in_worker, path, fmt.record_type, self.keyring,
                                                 self.spool)

    def __iter__(self) -> Iterator[tuple[FileFormat, Path, Callable[[], Prepared]]]:
        self._fill()
        while any(self.queues.values()):
            heads = [q[0] for q in self.queues.values() if q]
            local = next(((fmt, path) for fmt, path in heads if path not in self.waiting), None)
            if local is not None:
                fmt, path = self.queues[local[0].record_type].popleft()
                yield fmt, path, lambda fmt=fmt, path=path: prepare_file(path, fmt, self.keyring)
                continue
            # every head is a worker's; one of them is always submitted (within a type, in order)
            submitted = [(fmt, path) for fmt, path in heads if path in self.futures]
            wait([self.futures[path] for _, path in submitted], return_when=FIRST_COMPLETED)
            fmt, path = next((fmt, path) for fmt, path in submitted if self.futures[path].done())
            self.queues[fmt.record_type].popleft()
            self.waiting.discard(path)
            future = self.futures.pop(path)
            self._fill()
            yield fmt, path, partial(self._result, future, path, fmt)

    def _result(self, future: Future, path: Path, fmt: FileFormat) -> Prepared:
        try:
            return future.result().load_spooled()
        except BrokenProcessPool:
            return prepare_file(path, fmt, self.keyring)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _largest_first(files: Sequence[tuple[FileFormat, Path]], new: Mapping[Path, int]) -> list[tuple[FileFormat, Path]]:
    """The new files in the order workers should take them: always the largest next file of any type."""
    queues: dict[str, deque[tuple[FileFormat, Path]]] = {}
    for fmt, path in files:
        if path in new:
            queues.setdefault(fmt.record_type, deque()).append((fmt, path))
    order = []
    while queues:
        record_type = max(queues, key=lambda rt: new[queues[rt][0][1]])
        order.append(queues[record_type].popleft())
        if not queues[record_type]:
            del queues[record_type]
    return order
