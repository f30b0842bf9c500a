"""Process pools that run CPU-heavy image work off the caller's thread, each task bounded.

The decode budget (indexer/decode_budget.py) refuses the costly files we know of from their
headers; these bounds are the second line, for a format or a trick nobody thought of: a task
that runs past its wall time has its worker killed and replaced (pebble), and a worker may grow
its address space only so far beyond what it needed to start (an allocation past that fails
with MemoryError, turned into a refusal).
"""

import multiprocessing
import os
import resource
import threading
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from pebble import ProcessExpired, ProcessPool

from indexer.analyze import AnalyzedImage, Rejected, analyze_in_worker, init_worker
from indexer.decode import DecodeLimits


@dataclass(frozen=True)
class WorkerBounds:
    seconds: float = 30.0  # wall time one task may take; a real image takes well under a second
    memory_bytes: int = 2 * 1024**3  # address space a worker may add once started (a 50 MP RGBA decode needs ~1 GB)


# Image work yields the CPU to the process that feeds it and to the browser: a render or a
# request waits on a wall clock, an analysis in a queue does not.
WORKER_NICENESS = 10


class PoolFull(Exception):
    """More tasks waiting than the pool's queue limit: the caller should answer "try later"."""


def limit_memory(extra_bytes: int) -> None:
    """In a worker: allow the address space it has now plus `extra_bytes`, no more."""
    with open("/proc/self/statm") as statm:
        now = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (now + extra_bytes, resource.RLIM_INFINITY))


class BoundedPool:
    """`submit(fn, *args)` runs fn in a worker process; its future fails with `Rejected` as the
    exception's argument when the task ran out of time or its worker died."""

    def __init__(self, *, workers: int, initializer, initargs: tuple = (), bounds: WorkerBounds = WorkerBounds(), queue_limit: int | None = None):
        self.bounds = bounds
        self._queue_limit = queue_limit
        self._pending = 0
        self._lock = threading.Lock()
        # "spawn": forking a process that runs an event loop and threads is not safe.
        self._pool = ProcessPool(
            max_workers=workers,
            initializer=_init_bounded,
            initargs=(bounds.memory_bytes, initializer, initargs),
            context=multiprocessing.get_context("spawn"),
        )
        self._workers = workers

    def submit(self, fn, *args) -> Future:
        with self._lock:
            if self._queue_limit is not None and self._pending >= self._workers + self._queue_limit:
                raise PoolFull(f"{self._pending} tasks in progress or waiting")
            self._pending += 1
        inner = self._pool.schedule(fn, args=args, timeout=self.bounds.seconds)
        outer: Future = Future()
        inner.add_done_callback(lambda done: self._settle(done, outer))
        return outer

    def _settle(self, done: Future, outer: Future) -> None:
        with self._lock:
            self._pending -= 1
        try:
            outer.set_result(done.result())
        except FutureTimeout:
            outer.set_result(Rejected("decode_timeout", f"decode_timeout: took longer than {self.bounds.seconds:g} s"))
        except ProcessExpired as exc:
            outer.set_result(Rejected("decode_crashed", f"decode_crashed: the worker died ({exc})"))
        except CancelledError:
            outer.cancel() or outer.set_result(Rejected("cancelled", "the pool closed"))
        except BaseException as exc:  # a bug in the task: the caller sees it as raised
            outer.set_exception(exc)

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def stop(self) -> None:
        """Kill the workers now, running tasks included (a service shutting down)."""
        self._pool.stop()
        self._pool.join()


def _init_bounded(memory_bytes: int, initializer, initargs: tuple) -> None:
    os.nice(WORKER_NICENESS)
    if initializer is not None:
        initializer(*initargs)
    limit_memory(memory_bytes)  # after the initializer: its models are part of the baseline


class AnalyzerPool:
    """The crawl's analysis workers: decode, hashes, faces, thumbnail; a task over its bounds is a Rejected."""

    def __init__(self, *, workers: int, limits: DecodeLimits = DecodeLimits(), bounds: WorkerBounds = WorkerBounds()):
        self._pool = BoundedPool(workers=workers, initializer=init_worker, initargs=(limits,), bounds=bounds)

    def submit(self, data: bytes) -> "Future[AnalyzedImage | Rejected]":
        return self._pool.submit(analyze_in_worker, data)

    def close(self) -> None:
        self._pool.close()
