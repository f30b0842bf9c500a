"""The bounded worker pools: image work runs at a lower CPU priority than its caller."""

import os

from indexer.workers import WORKER_NICENESS, BoundedPool


def test_workers_yield_the_cpu_to_the_crawl_and_the_browser():
    pool = BoundedPool(workers=1, initializer=None)
    try:
        assert pool.submit(os.nice, 0).result(timeout=60) == min(19, os.nice(0) + WORKER_NICENESS)
    finally:
        pool.close()
