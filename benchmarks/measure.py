"""Wall time, memory and machine load, measured the same way for every section.

Peak memory is sampled in a background thread (psutil) rather than read from
``getrusage`` alone, because the benchmark process also generates data and runs
baselines: ``ru_maxrss`` is a high-water mark for the whole process life, while a
sampler can be reset per section. Encryption forks worker processes, so the
sampler also adds the children's private memory (USS); their RSS would count the
parent's pages they share a second time. Reading a child's USS walks its page
tables (``/proc/<pid>/smaps``) and contends with the child's own memory work: read
every 50 ms it cost the 10M ingest 6% of its CPU (175 -> 186 CPU-s, same files), so
children are read once a second and the main process every 50 ms.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import psutil

GB = 1024**3


@dataclass
class Section:
    """What one measured section of the benchmark cost."""

    name: str
    seconds: float = 0.0
    peak_rss: int = 0  # main process, bytes
    peak_tree_rss: int = 0  # main process RSS + children's private memory (USS), bytes
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cpu_seconds: float = 0.0  # user + system CPU of this process and its children


@dataclass(eq=False)  # trackers are removed by identity, never by value
class Peak:
    """Highest RSS seen while this tracker was open (bytes)."""

    rss: int = 0
    tree: int = 0


@dataclass
class RssSampler:
    """Samples RSS every ``interval`` seconds into every open :class:`Peak` tracker.

    Trackers nest: a benchmark section and each pipeline stage inside it keep
    their own peak. The children's private memory is read every ``children_interval``
    seconds (and when a tracker opens or closes); between reads their last value counts.
    """

    interval: float = 0.05
    children_interval: float = 1.0
    _children: int = 0
    _children_read: float = float("-inf")
    _open: list[Peak] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _sample(self, children: bool = False) -> None:
        try:
            rss = self._proc.memory_info().rss
            now = time.monotonic()
            if children or now - self._children_read >= self.children_interval:
                uss = 0
                for child in self._proc.children(recursive=True):
                    with suppress(psutil.Error):  # a worker may exit between listing and reading
                        uss += child.memory_full_info().uss  # pages only the worker holds
                self._children, self._children_read = uss, now
            tree = rss + self._children
        except psutil.Error:
            return
        with self._lock:
            for peak in self._open:
                peak.rss, peak.tree = max(peak.rss, rss), max(peak.tree, tree)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    @contextmanager
    def track(self) -> Iterator[Peak]:
        """The peak RSS of a block (also sampled at its start and end, so short blocks count)."""
        peak = Peak()
        with self._lock:
            self._open.append(peak)
        self._sample(children=True)
        try:
            yield peak
        finally:
            self._sample(children=True)
            with self._lock:
                self._open.remove(peak)

    @contextmanager
    def section(self, name: str) -> Iterator[Section]:
        """Time a block and record its peak memory and the machine load around it."""
        sec = Section(name, load_before=os.getloadavg())
        cpu0 = cpu_seconds()
        start = time.perf_counter()
        with self.track() as peak:
            try:
                yield sec
            finally:
                sec.seconds = time.perf_counter() - start
                sec.cpu_seconds = cpu_seconds() - cpu0
                sec.load_after = os.getloadavg()
        sec.peak_rss, sec.peak_tree_rss = peak.rss, peak.tree


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (encryption workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def max_rss_lifetime() -> int:
    """High-water RSS of this process over its whole life (bytes, Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine() -> dict:
    """The box the numbers came from: cores, memory, and how busy it was."""
    vm = psutil.virtual_memory()
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(vm.total / GB, 1),
        "available_gb": round(vm.available / GB, 1),
        "load_avg": os.getloadavg(),
    }


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` holds the seconds."""
    out = [0.0]
    start = time.perf_counter()
    try:
        yield out
    finally:
        out[0] = time.perf_counter() - start
