"""Scale-out: one worker against two on one Redis frontier, crawling the same local site.

The site is spread over several loopback hosts (127.0.0.2, 127.0.0.3, ...; all of 127.0.0.0/8
is this machine), each with pages of two images of their own, so every image is downloaded,
decoded, hashed and checked for faces. Each worker runs one analysis process
(INDEXER_WORKERS=1): one worker is one unit of work, and two are what an operator adds. A
small politeness delay per host holds across workers.

Two layouts, each with its own one-worker baseline:
  - one core per worker: each worker (crawl and analysis processes) is held to a core of its
    own, as if each ran on a machine of one core: what a second worker adds, apart from how
    one worker's processes share this machine's two cores;
  - both cores shared: no pinning. One worker alone already keeps more than one core busy
    (its analysis process one, its crawl process a fraction more), so two workers here are
    capped near 2 / (cores one worker uses).
Printed, against the baseline run in the same invocation:
  - images stored per second of wall time (first worker started to last worker ended);
  - CPU of all worker process trees;
  - Redis round trips per page crawled, seen by the server (MONITOR): every command a client
    sends, a MULTI ... EXEC block counted once, the commands scripts run inside Redis not at all.

    .venv/bin/python benchmarks/scale.py                 # about five minutes here
    .venv/bin/python benchmarks/scale.py --pages 40      # pages per host
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gallery.demo import make_picture  # noqa: E402
from gallery.site import StaticSite  # noqa: E402
from indexer.store import Gallery  # noqa: E402
from tests.fixture_site import jpeg_bytes  # noqa: E402
from tests.servers import redis_server  # noqa: E402

IMAGES_PER_PAGE = 2
DELAY = 0.05  # seconds between two requests to one host, across all workers


def build_host_site(root: Path, *, host: int, pages: int) -> Path:
    (root / "img").mkdir(parents=True)
    for n in range(pages):
        images = []
        for k in range(IMAGES_PER_PAGE):
            name = f"img/{n}-{k}.jpg"
            (root / name).write_bytes(jpeg_bytes(make_picture(host * 100_000 + n * 10 + k, (480, 360))))
            images.append(f'<img src="/{name}" alt="picture {n}-{k}">')
        (root / f"p{n}.html").write_text(f"<!doctype html><html><body><h1>{n}</h1>{''.join(images)}</body></html>")
    links = "".join(f'<a href="/p{n}.html">{n}</a> ' for n in range(pages))
    (root / "index.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    return root


@dataclass
class Run:
    name: str
    wall: float
    cpu: float
    images: int
    pages: int
    round_trips: Counter

    @property
    def round_trips_per_page(self) -> float:
        return sum(self.round_trips.values()) / self.pages

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall


class RoundTrips:
    """Counts what clients send to Redis, from a MONITOR connection, until stopped."""

    def __init__(self, url: str):
        self.counts: Counter = Counter()
        self._monitor = redis.Redis.from_url(url).monitor()
        self._connection = self._monitor.__enter__()
        self._thread = threading.Thread(target=self._count, daemon=True)
        self._thread.start()

    def _count(self) -> None:
        in_multi = False
        try:
            for event in self._connection.listen():
                if event["client_type"] == "lua":
                    continue  # run by a script inside Redis: part of the EVALSHA that started it
                command = event["command"].split(" ", 1)[0].strip('"').lower()
                if command == "multi":
                    in_multi = True
                elif command == "exec":
                    in_multi = False
                    self.counts["multi ... exec"] += 1
                elif not in_multi:
                    self.counts[command] += 1
        except (redis.ConnectionError, ValueError):
            pass  # stopped

    def stop(self) -> Counter:
        time.sleep(0.2)  # let the last events arrive
        self._monitor.connection.disconnect()
        self._thread.join(timeout=5)
        return self.counts


def run_workers(name: str, count: int, *, seeds: list[str], frontier: str, gallery: Path, cores: list[int] | None) -> Run:
    """`cores`: worker n is held to cores[n] (with taskset, inherited by its analysis process); None: not pinned."""
    redis.Redis.from_url(frontier).flushdb()
    trips = RoundTrips(frontier)
    command = [
        sys.executable, "-m", "gallery", "crawl", *seeds, "--gallery", str(gallery), "--frontier", frontier,
        "--allow-loopback", "--render", "never", "--delay", str(DELAY), "--set", "INDEXER_WORKERS=1", "--json",
    ]  # fmt: skip
    start, times = time.perf_counter(), os.times()
    # Logs to files: a pipe nobody reads while waiting for another worker would fill and stall it.
    logs = [gallery.with_name(f"{gallery.name}-worker-{n}.log") for n in range(count)]
    pinned = [["taskset", "--cpu-list", str(cores[n])] if cores else [] for n in range(count)]
    workers = [
        subprocess.Popen(prefix + command, cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
        for prefix, log in zip(pinned, logs)
    ]
    pages = 0
    for worker, log in zip(workers, logs):
        stdout, _ = worker.communicate()
        if worker.returncode != 0:
            raise SystemExit(f"{name}: a worker exited {worker.returncode}:\n{log.read_text()[-2000:]}")
        pages += json.loads(stdout)["pages"]
    wall = time.perf_counter() - start
    # Reaped workers' CPU, with that of the analysis processes each of them reaped.
    usage = os.times()
    cpu = usage.children_user + usage.children_system - times.children_user - times.children_system
    return Run(name, wall, cpu, Gallery(str(gallery), create=False).counts()["images"], pages, trips.stop())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--pages", type=int, default=80, help="pages per host")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    layouts = {"one core per worker": True, "both cores shared": False} if len(cores) >= 2 else {"shared": False}

    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp, ExitStack() as stack:
        tmp = Path(tmp)
        frontier = stack.enter_context(redis_server(tmp))
        sites = [
            stack.enter_context(
                StaticSite(build_host_site(tmp / f"host{h}", host=h, pages=args.pages), host=f"127.0.0.{h + 2}", keep_alive=True)
            )
            for h in range(args.hosts)
        ]
        seeds = [site.url + "/" for site in sites]
        runs = {}
        for layout, pin in layouts.items():
            galleries = tmp / layout.replace(" ", "-")
            galleries.mkdir()
            pinned = cores if pin else None
            one = run_workers("one worker", 1, seeds=seeds, frontier=frontier, gallery=galleries / "g1", cores=pinned)
            runs[layout] = (one, run_workers("two workers", 2, seeds=seeds, frontier=frontier, gallery=galleries / "g2", cores=pinned))

    expected = args.hosts * args.pages * IMAGES_PER_PAGE
    print(f"\n{args.hosts} hosts x {args.pages} pages x {IMAGES_PER_PAGE} images ({expected} images), {len(cores)} cores,")
    print(f"one analysis process per worker, {DELAY} s per host across workers (baseline: one worker, same layout)")
    print(f"{'case':<16}{'images':>8}{'wall s':>8}{'images/s':>10}{'vs base':>9}{'CPU s':>8}{'Redis round trips/page':>24}")
    for layout, (one, two) in runs.items():
        print(layout)
        for run in (one, two):
            print(
                f"  {run.name:<14}{run.images:>8}{run.wall:>8.1f}{run.images_per_s:>10.1f}{run.images_per_s / one.images_per_s:>8.2f}x"
                f"{run.cpu:>8.1f}{run.round_trips_per_page:>24.1f}"
            )
    two = runs[layout][1]
    print(f"\nRedis round trips per page crawled, by command (two workers, {layout})")
    for command, calls in two.round_trips.most_common():
        print(f"  {command:<20}{calls / two.pages:>8.2f}")


if __name__ == "__main__":
    main()
