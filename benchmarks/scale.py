"""Scale-out: one worker against two on one Redis frontier, crawling the same local site.

The site is spread over several loopback hosts (127.0.0.2, 127.0.0.3, ...; all of 127.0.0.0/8
is this machine), served by Debian's nginx: what serving costs on the workers' cores is then a
real web server's share, not Python's http.server's, which costs several times more per
request. Each host has pages of two images of their own, so every image is downloaded,
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
In each layout a third run, "two apart", is the reference for what two workers can gain on this
machine at all: two crawls that share nothing, each given half of the hosts, without a frontier,
each into a gallery of its own. Nothing is coordinated, so nothing is paid for it; where "two
workers" comes close to it, the frontier is not what holds the two back.
Printed, each run against the one-worker run just before it:
  - images stored per second of wall time (first worker started to last worker ended);
  - CPU of all worker process trees;
  - Redis round trips per page crawled: every request a worker sends (a script, a pipeline or
    a MULTI ... EXEC block is one), as each worker counts them (`redis_round_trips` in its
    summary). Counted by the workers, not watched with MONITOR: a MONITOR client is fed every
    command, and with two workers there is no spare core for that work.

    .venv/bin/python benchmarks/scale.py                 # about five minutes here
    .venv/bin/python benchmarks/scale.py --repeat 3      # three rounds per layout, and the medians
    .venv/bin/python benchmarks/scale.py --pages 40      # pages per host
"""

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gallery.demo import make_picture  # noqa: E402
from indexer.store import Gallery  # noqa: E402
from tests.fixture_site import jpeg_bytes  # noqa: E402
from tests.servers import nginx_sites, redis_server  # noqa: E402

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
    round_trips: int

    @property
    def round_trips_per_page(self) -> float:
        return self.round_trips / self.pages

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall


def crawl_command(seeds: list[str], gallery: Path, frontier: str | None) -> list[str]:
    return [
        sys.executable, "-m", "gallery", "crawl", *seeds, "--gallery", str(gallery),
        *(["--frontier", frontier] if frontier else []),
        "--allow-loopback", "--render", "never", "--delay", str(DELAY), "--set", "INDEXER_WORKERS=1", "--json",
    ]  # fmt: skip


def run_workers(name: str, commands: list[list[str]], *, galleries: list[Path], frontier: str, cores: list[int] | None) -> Run:
    """One process per command, all at once; `cores`: worker n is held to cores[n] (with taskset,
    inherited by its analysis process), None: not pinned. Images are counted in `galleries`."""
    redis.Redis.from_url(frontier).flushdb()
    start, times = time.perf_counter(), os.times()
    # Logs to files: a pipe nobody reads while waiting for another worker would fill and stall it.
    logs = [galleries[0].with_name(f"{galleries[0].name}-worker-{n}.log") for n in range(len(commands))]
    pinned = [["taskset", "--cpu-list", str(cores[n])] if cores else [] for n in range(len(commands))]
    workers = [
        subprocess.Popen(prefix + command, cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
        for prefix, command, log in zip(pinned, commands, logs)
    ]
    pages = round_trips = 0
    for worker, log in zip(workers, logs):
        stdout, _ = worker.communicate()
        if worker.returncode != 0:
            raise SystemExit(f"{name}: a worker exited {worker.returncode}:\n{log.read_text()[-2000:]}")
        summary = json.loads(stdout)
        pages, round_trips = pages + summary["pages"], round_trips + summary["redis_round_trips"]
    wall = time.perf_counter() - start
    # Reaped workers' CPU, with that of the analysis processes each of them reaped.
    usage = os.times()
    cpu = usage.children_user + usage.children_system - times.children_user - times.children_system
    images = sum(Gallery(str(gallery), create=False).counts()["images"] for gallery in galleries)
    return Run(name, wall, cpu, images, pages, round_trips)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--pages", type=int, default=80, help="pages per host")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (one worker, two workers, two apart) per layout; the median ratios are printed")
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        raise SystemExit("benchmarks/scale.py serves its site with Debian's nginx: apt-get install nginx")
    cores = sorted(os.sched_getaffinity(0))
    layouts = {"one core per worker": True, "both cores shared": False} if len(cores) >= 2 else {"shared": False}

    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp, ExitStack() as stack:
        tmp = Path(tmp)
        frontier = stack.enter_context(redis_server(tmp))
        roots = {f"127.0.0.{h + 2}": build_host_site(tmp / f"host{h}", host=h, pages=args.pages) for h in range(args.hosts)}
        seeds = [url + "/" for url in stack.enter_context(nginx_sites(roots, tmp))]
        trios: dict[str, list[tuple[Run, Run, Run]]] = {layout: [] for layout in layouts}
        # Runs back to back, layouts taking turns: this machine's speed drifts by several
        # percent over minutes, and each ratio then compares runs made close together.
        for n in range(args.repeat):
            for layout, pin in layouts.items():
                where = tmp / f"{layout.replace(' ', '-')}-{n}"
                where.mkdir()
                run = functools.partial(run_workers, frontier=frontier, cores=cores if pin else None)
                one = run("one worker", [crawl_command(seeds, where / "g1", frontier)], galleries=[where / "g1"])
                two = run("two workers", [crawl_command(seeds, where / "g2", frontier)] * 2, galleries=[where / "g2"])
                halves = [where / "g3a", where / "g3b"]
                apart = run(
                    "two apart",
                    [crawl_command(seeds[0::2], halves[0], None), crawl_command(seeds[1::2], halves[1], None)],
                    galleries=halves,
                )
                trios[layout].append((one, two, apart))

    expected = args.hosts * args.pages * IMAGES_PER_PAGE
    print(f"\n{args.hosts} hosts x {args.pages} pages x {IMAGES_PER_PAGE} images ({expected} images), {len(cores)} cores,")
    print(f"one analysis process per worker, {DELAY} s per host across workers (baseline: the one-worker run just before)")
    print(f"{'case':<16}{'images':>8}{'wall s':>8}{'images/s':>10}{'vs base':>9}{'CPU s':>8}{'Redis round trips/page':>24}")
    for layout, runs in trios.items():
        print(layout)
        for trio in runs:
            one = trio[0]
            for run in trio:
                print(
                    f"  {run.name:<14}{run.images:>8}{run.wall:>8.1f}{run.images_per_s:>10.1f}{run.images_per_s / one.images_per_s:>8.2f}x"
                    f"{run.cpu:>8.1f}{run.round_trips_per_page:>24.1f}"
                )
        if len(runs) > 1:
            for k, name in ((1, "two workers"), (2, "two apart")):
                median = statistics.median(trio[k].images_per_s / trio[0].images_per_s for trio in runs)
                print(f"  {'median, ' + name:<41}{median:>8.2f}x")


if __name__ == "__main__":
    main()
