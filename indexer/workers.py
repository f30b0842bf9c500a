"""The process pool that runs CPU-heavy image work off the caller's thread."""

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

from indexer.analyze import AnalyzedImage, Rejected, analyze_in_worker, init_worker
from indexer.decode import DecodeLimits


class AnalyzerPool:
    def __init__(self, *, workers: int, limits: DecodeLimits = DecodeLimits()):
        # "spawn": forking a process that runs an event loop and threads is not safe.
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(limits,),
        )

    def submit(self, data: bytes) -> "Future[AnalyzedImage | Rejected]":
        return self._executor.submit(analyze_in_worker, data)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
