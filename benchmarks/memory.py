"""Memory of a long crawl: the process tree's resident set as the images go by.

Target (issue 17): peak RSS of a crawl over 100,000 images at most 1.5 GB, and flat after
warm-up. The fixture (generated once, kept under benchmarks/.memory/, git-ignored): --images
distinct small pictures (48-96 px JPEGs and PNGs of smooth random colour fields: each its own
sha256, almost never near-duplicates, cheap to analyse), linked from pages of 100 images,
served by Debian's nginx on 127.0.0.1. `gallery crawl` runs on it with the politeness delay off
(--delay 0) and its heartbeat every second; the tree's RSS (crawler, analysis workers, any
browser) is sampled every second. Printed: RSS at 10, 25, 50, 75 and 100% of the images, the
peak, and the slope after warm-up (MB per 10,000 images, a least-squares line over the samples
from 25% to 95%), for the tree and for the crawl process alone. With --checkout (repeatable),
each checkout crawls the same site in turn; a table compares them with the first, and the last
line (peak_rss_gb) is the first's.

Measured on 2 shared cores (load 5-7), after the compaction and allocator changes (README,
Settings): 100,000 images, peak tree RSS 1,097 MB, +22 MB per 10,000 images from 25% to 95%,
104 images/s (before, main at 81c129a: about 1,620 MB and still growing). 10,000 images, main
and this change taking turns in one invocation: peak 908 and 917 MB against 797 and 790 MB,
+195 and +227 against +100 and +104 MB per 10,000 images (still warming up), 84-90 against
85-96 images/s.

    nice .venv/bin/python benchmarks/memory.py --images 10000
    nice .venv/bin/python benchmarks/memory.py --images 10000 --checkout /work/main --checkout .
    nice .venv/bin/python benchmarks/memory.py --images 100000     # 15-20 min on 2 cores
"""

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.throughput import write_pages  # noqa: E402
from tests.servers import nginx_sites  # noqa: E402

CACHE = REPO / "benchmarks" / ".memory"
IMAGES_PER_PAGE = 100
PAGES_PER_HUB = 100  # the index links hub pages, each hub links this many pages
MARKS = (0.10, 0.25, 0.50, 0.75, 1.00)
WARM_UP = 0.25  # the slope is fitted from this fraction of the images on
FIT_END = 0.95  # ... up to this one: at the end the workers close, and the heartbeat lags
HEARTBEAT = re.compile(r"crawl: (\d+) pages, (\d+) images")


# -- the fixture ------------------------------------------------------------------------------


def picture(rng: np.random.Generator) -> tuple[bytes, str]:
    """A smooth random colour field: a 4x4 to 8x8 grid of random colours, scaled up."""
    grid = int(rng.integers(4, 9))
    side = int(rng.integers(48, 97))
    cells = Image.fromarray(rng.integers(0, 256, (grid, grid, 3), dtype=np.uint8))
    img = cells.resize((side, side * int(rng.integers(3, 5)) // 4), Image.BICUBIC)
    buffer = io.BytesIO()
    if rng.random() < 0.25:
        img.save(buffer, "PNG")
        return buffer.getvalue(), "png"
    img.save(buffer, "JPEG", quality=int(rng.integers(75, 95)))
    return buffer.getvalue(), "jpg"


def build_fixture(root: Path, images: int, seed: int = 17) -> int:
    rng = np.random.default_rng(seed)
    pages: list[list[str]] = []
    for n in range(images):
        data, ext = picture(rng)
        folder = root / "img" / str(n // 1000)
        if n % 1000 == 0:
            folder.mkdir(parents=True)
        name = f"img/{n // 1000}/{n}.{ext}"
        (root / name).write_bytes(data)
        if n % IMAGES_PER_PAGE == 0:
            pages.append([])
        pages[-1].append(name)
    write_pages(root, pages, pages_per_hub=PAGES_PER_HUB)
    return len(pages)


def fixture(images: int) -> Path:
    root = CACHE / f"site-{images}"
    done = CACHE / f"site-{images}.json"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f"generating {images} images under {root} ...", file=sys.stderr)
        start = time.perf_counter()
        pages = build_fixture(root, images)
        done.write_text(json.dumps({"images": images, "pages": pages}))
        print(f"generated in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return root


# -- sampling the crawl -------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    images: int  # taken in by the pipeline so far (the heartbeat's count)
    tree: int  # bytes, RSS summed over the process tree
    main: int  # bytes, RSS of the crawl process alone
    processes: int
    # Anonymous memory (the heap: what a leak grows). RSS also counts mapped library and model
    # files, which the kernel drops and reloads as other processes need memory.
    tree_anon: int = 0
    main_anon: int = 0


def anonymous_rss(process: psutil.Process) -> int:
    with open(f"/proc/{process.pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def crawl(url: str, gallery: Path, workdir: Path, *, checkout: Path = REPO) -> tuple[list[Sample], float, dict]:
    # Run from the checkout: `python -m` puts it first on sys.path, ahead of the installed project.
    command = [sys.executable, "-m", "gallery", "crawl", url + "/", "--allow-loopback", "--delay", "0",
               "--concurrency-per-host", "16", "--gallery", str(gallery), "--json", "-s", "GALLERY_HEARTBEAT=1"]
    stderr = (workdir / "crawl.stderr").open("w+")
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=checkout, stdout=subprocess.DEVNULL, stderr=stderr)
    samples: list[Sample] = []
    done = threading.Event()

    def images_so_far() -> int:
        stderr.flush()
        with open(stderr.name) as log:
            counts = [int(m.group(2)) for m in HEARTBEAT.finditer(log.read()[-4000:])]
        return counts[-1] if counts else 0

    def watch() -> None:
        top = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            sizes, anon = [], []
            for p in tree:
                try:
                    sizes.append(p.memory_info().rss)
                    anon.append(anonymous_rss(p))
                except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                    sizes.append(0)
                    anon.append(0)
            samples.append(Sample(time.perf_counter() - start, images_so_far(), sum(sizes), sizes[0], len(tree), sum(anon), anon[0]))
            done.wait(1.0)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    code = process.wait()
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    if code:
        stderr.seek(0)
        raise SystemExit(f"gallery crawl exited with {code}:\n{stderr.read()[-2000:]}")
    from indexer.store import Gallery

    return samples, wall, Gallery(str(gallery), create=False).last_crawl()


def at_fraction(samples: list[Sample], images: int, fraction: float) -> Sample:
    """The first sample with at least this fraction of the images taken in."""
    for s in samples:
        if s.images >= fraction * images:
            return s
    return max(samples, key=lambda s: s.images)


def slope_mb_per_10k(samples: list[Sample], images: int, attr: str) -> float:
    """Least-squares MB per 10,000 images over the samples taken after warm-up, before the end."""
    warm = [s for s in samples if WARM_UP * images <= s.images <= FIT_END * images]
    if len({s.images for s in warm}) < 2:
        return float("nan")
    x = np.array([s.images for s in warm], dtype=float)
    y = np.array([getattr(s, attr) for s in warm], dtype=float) / 2**20
    return float(np.polyfit(x, y, 1)[0] * 10_000)


@dataclass
class Run:
    checkout: Path
    samples: list[Sample]
    wall: float
    stats: dict
    disk: int  # bytes, the gallery directory after the crawl (every version Lance kept)


def report(run: Run, n: int) -> None:
    samples, stats = run.samples, run.stats
    taken = stats.get("indexer/stored", 0) + stats.get("indexer/duplicate/exact", 0)
    print(f"\n== {run.checkout}")
    print(f"crawl: {run.wall:.0f} s wall, {n / run.wall:.0f} images/s; stored {stats.get('indexer/stored', 0)}, "
          f"exact duplicates {stats.get('indexer/duplicate/exact', 0)}, near {stats.get('indexer/duplicate/near', 0)}, "
          f"skipped {sum(v for k, v in stats.items() if k.startswith('indexer/skipped/'))}; gallery on disk {run.disk / 2**20:.0f} MB")
    if taken < n:
        print(f"note: only {taken} of {n} images reached the gallery")
    columns = ("tree", "tree_anon", "main", "main_anon")
    print(f"{'images taken in':<20}{'tree RSS':>10}{'tree anon':>11}{'crawl process':>15}{'its anon':>10}{'processes':>11}")

    def row(name: str, values: list[float], processes: int) -> None:
        print(f"{name:<20}" + "".join(f"{v / 2**20:>{w}.0f}" for v, w in zip(values, (10, 11, 15, 10))) + f"{processes:>11}")

    for fraction in MARKS:
        s = at_fraction(samples, n, fraction)
        row(f"{fraction:.0%} ({s.images})", [getattr(s, c) for c in columns], s.processes)
    row("peak", [max(getattr(s, c) for s in samples) for c in columns], max(s.processes for s in samples))
    peak = max(samples, key=lambda s: s.tree)
    print(f"tree RSS peak at {peak.images} images, {peak.t:.0f} s")
    print(f"slope from {WARM_UP:.0%} to {FIT_END:.0%} of the images, MB per 10k images: "
          + ", ".join(f"{c} {slope_mb_per_10k(samples, n, c):+.1f}" for c in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the samples (JSON lines) here, one file per checkout: PATH.N")
    parser.add_argument("--checkout", type=Path, action="append", help="a checkout of the project (repeatable; default this one)")
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        raise SystemExit("benchmarks/memory.py serves its site with Debian's nginx: apt-get install nginx")
    checkouts = [c.resolve() for c in (args.checkout or [REPO])]
    root = fixture(args.images)
    runs = []
    with tempfile.TemporaryDirectory(prefix="memory-") as tmp_, nginx_sites({"127.0.0.1": root}, Path(tmp_)) as (url,):
        for number, checkout in enumerate(checkouts):
            workdir = Path(tmp_) / str(number)
            workdir.mkdir()
            print(f"crawling with {checkout} ...", file=sys.stderr)
            samples, wall, stats = crawl(url, workdir / "gallery", workdir, checkout=checkout)
            disk = sum(f.stat().st_size for f in (workdir / "gallery").rglob("*") if f.is_file())
            runs.append(Run(checkout, samples, wall, stats, disk))
            if args.keep:
                Path(f"{args.keep}.{number}").write_text("".join(json.dumps(s.__dict__) + "\n" for s in runs[-1].samples))
    n = args.images
    print(f"{n} images on {-(-n // IMAGES_PER_PAGE)} pages; nginx on 127.0.0.1; load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (shared machine)")
    print("MB; anon: anonymous memory (heap), the part of RSS a leak grows")
    for run in runs:
        report(run, n)
    if len(runs) > 1:
        print(f"\n{'checkout':<40}{'images/s':>10}{'peak tree MB':>14}{'tree MB/10k':>13}{'disk MB':>9}{'vs first: peak':>16}{'images/s':>10}")
        first = runs[0]
        for run in runs:
            peak = max(s.tree for s in run.samples)
            print(f"{str(run.checkout):<40}{n / run.wall:>10.0f}{peak / 2**20:>14.0f}{slope_mb_per_10k(run.samples, n, 'tree'):>+13.1f}{run.disk / 2**20:>9.0f}"
                  f"{peak / max(s.tree for s in first.samples):>16.2f}{first.wall / run.wall:>10.2f}")
    print(f"peak_rss_gb: {max(s.tree for s in runs[0].samples) / 2**30:.2f}")


if __name__ == "__main__":
    main()
