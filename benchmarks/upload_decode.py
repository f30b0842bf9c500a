"""Where the search service decodes uploads: a thread pool or a process pool (the service's).

Measures, in one invocation:
- one ordinary upload (a 1600x1200 JPEG) hashed through each pool: the process pool's round
  trip (pickling the bytes, a second process) against a thread's;
- how long a small request (`gallery.counts()`, what GET /stats does) waits while four costly
  decodes run (progressive JPEGs at the scan limit, 64 scans over 3900x3900 pixels, just within the budget);
- whether a decode past its time can be stopped: a thread cannot be killed, a process can.

    .venv/bin/python benchmarks/upload_decode.py [--rounds 5]
"""

import argparse
import io
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gallery.demo import make_picture  # noqa: E402
from indexer.analyze import init_query_worker, query_in_worker  # noqa: E402
from indexer.decode import DecodeLimits  # noqa: E402
from indexer.store import Gallery  # noqa: E402
from indexer.workers import BoundedPool, WorkerBounds  # noqa: E402


def costly_jpeg(scans: int = 64, size: int = 3900) -> bytes:
    """A progressive JPEG with `scans` scans (its last refinement scan repeated): within the limit."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (120, 130, 140)).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    last = data[data.rfind(b"\xff\xda") : -2]
    have = data.count(b"\xff\xda")
    return data[:-2] + last * (scans - have) + data[-2:]


def ordinary_jpeg() -> bytes:
    buffer = io.BytesIO()
    make_picture(3, (1600, 1200)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def stats_latency_under_load(submit, gallery: Gallery, costly: bytes) -> list[float]:
    futures = [submit(costly) for _ in range(4)]
    waits = []
    while not all(f.done() for f in futures):
        waits.append(timed(gallery.counts))
        time.sleep(0.05)
    for f in futures:
        f.result()
    return waits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    limits = DecodeLimits()
    ordinary, costly = ordinary_jpeg(), costly_jpeg()
    init_query_worker(limits)  # for the threads, in this process
    with tempfile.TemporaryDirectory() as tmp:
        gallery = Gallery(str(Path(tmp) / "g"))
        threads = ThreadPoolExecutor(2)
        processes = BoundedPool(workers=2, initializer=init_query_worker, initargs=(limits,), bounds=WorkerBounds(seconds=120))
        processes.submit(query_in_worker, ordinary).result()  # start the workers before timing
        pools = {"threads (2)": lambda data: threads.submit(query_in_worker, data),
                 "processes (2)": lambda data: processes.submit(query_in_worker, data)}
        rows = []
        for name, submit in pools.items():
            one = statistics.median(timed(lambda: submit(ordinary).result()) for _ in range(args.rounds))
            costly_one = timed(lambda: submit(costly).result())
            waits = stats_latency_under_load(submit, gallery, costly)
            rows.append((name, one, costly_one, statistics.median(waits), max(waits)))
        processes.stop()
        threads.shutdown()
    base = rows[0]
    print(f"{'pool':<14} {'ordinary upload':>16} {'costly upload':>14} {'counts() p50':>13} {'counts() max':>13}  {'vs threads':>10}")
    for name, one, costly_one, p50, worst in rows:
        print(f"{name:<14} {one * 1000:>14.1f}ms {costly_one:>13.2f}s {p50 * 1000:>11.1f}ms {worst * 1000:>11.1f}ms  {one / base[1]:>9.2f}x")
    print("a decode past its time: threads cannot be stopped; processes are killed and replaced (WorkerBounds.seconds)")


if __name__ == "__main__":
    main()
