"""Throughput against img2dataset, on the same images served by Debian's nginx on 127.0.0.1.

The fixture (generated once, kept under benchmarks/.throughput/, git-ignored): --images image
URLs of mixed kinds (JPEG photos 256-2,000 px, some with faces from package-shipped photos,
PNG screenshots, spacers and icons, exact duplicates and near duplicates at URLs of their own,
5% hostile files: a PNG bomb, truncated JPEGs, empty files, HTML named .jpg), linked from
pages of 20 images, plus the flat URL list.

Alternating, --runs times each:
- img2dataset (the `benchmark` dependency group, installed into benchmarks/.img2dataset-venv)
  on the URL list, 2 processes x 32 threads, no resize, no re-encoding; then the face pass
  dataset builders add: the same detector at the same scale (indexer/faces.py over the
  picture decoded as we decode it), faces pixelated and written back, over 2 processes;
- `gallery crawl` of the pages, every check on, politeness delay off (--delay 0).
Printed: images/s (image URLs in the list over wall seconds), CPU-s per image, peak RSS of the
process tree, then our CPU per image by stage: the crawl process's stages (fetch, policy, page
parse, sha256, near-duplicate matching, write...) timed in one more crawl with thread-CPU timers
around them, the workers' stages (decode, XMP, hashes, region hashes, faces, thumbnail) measured in this process
on a sample of the fixture's files; then `non_face_cpu_ms_per_image vs
img2dataset_cpu_ms_per_image` (our whole tree's CPU per image less face detection, against
img2dataset's own), and last `ratio_vs_img2dataset` (median images/s of ours over the median of
img2dataset plus the face pass). The machine is shared: compare ratios, not seconds.

    .venv/bin/python benchmarks/throughput.py                 # 2,000 images, 3 runs each
    .venv/bin/python benchmarks/throughput.py --images 200 --runs 1   # a quick check

Measured (`--images 2000 --runs 1`, branch speed: PNG pixels from libvips, PDQ sampled in numpy,
the JPEG scan walk's regex; faces as at eeb6c3b; 2-core machine shared with three other sessions,
load 6, walls four times the quiet ones): non_face_cpu_ms_per_image 15.7 against img2dataset's 8.3
(before: 18.2 against 7.7); ratio_vs_img2dataset 1.10. The crawl process 5.8 ms per image URL
(start-up 1.0, fetch and Scrapy's engine 2.0, policy 0.2, pipeline 0.2, matching 0.4, other
threads 1.6); the workers' decode 5.9, pHash+PDQ 3.2, regions 3.3, thumbnail 0.6 ms per file.
Face detection measured 70-78 ms per picture in this run (22.5 quiet): under this load the
non-face figure, the whole tree less that estimate, is uncertain by a few ms either way;
benchmarks/analysis_cpu.py gives the workers' steps alone, baseline against branch.
"""

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gallery.demo import make_picture  # noqa: E402
from tests.fixture_site import astronaut, grace_hopper, jpeg_bytes, png_bomb  # noqa: E402
from tests.servers import nginx_sites  # noqa: E402

CACHE = REPO / "benchmarks" / ".throughput"
I2D_VENV = REPO / "benchmarks" / ".img2dataset-venv"
IMAGES_PER_PAGE = 20


# -- the fixture ------------------------------------------------------------------------------


def _screenshot(rng: np.random.Generator) -> Image.Image:
    width = int(rng.integers(800, 1600))
    img = Image.new("RGB", (width, width * 10 // 16), "white")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 15))):  # panels
        x, y = int(rng.integers(0, width - 100)), int(rng.integers(0, img.height - 40))
        draw.rectangle((x, y, x + int(rng.integers(60, 400)), y + int(rng.integers(20, 200))), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    for line in range(0, img.height, 18):  # text-like lines
        draw.text((10, line), "".join(chr(int(c)) for c in rng.integers(65, 91, int(rng.integers(10, 80)))), fill="black")
    return img


def _photo(n: int, rng: np.random.Generator, faces: list[Image.Image]) -> Image.Image:
    side = int(rng.integers(256, 2001))
    img = make_picture(n, (side, side * 3 // 4))
    if n % 5 == 0:  # one photo in five shows a person
        face = faces[n % len(faces)]
        scale = rng.uniform(0.3, 0.9) * min(img.size) / max(face.size)
        img.paste(face.resize((max(1, int(face.width * scale)), max(1, int(face.height * scale)))), (0, 0))
    return img


def build_fixture(root: Path, images: int, seed: int = 17) -> list[str]:
    """Write the site under root; return the image paths, in page order (duplicates included)."""
    rng = np.random.default_rng(seed)
    faces = [astronaut(), grace_hopper()]
    (root / "img").mkdir(parents=True)
    paths: list[str] = []
    stored: list[str] = []  # files a duplicate can copy

    def write(name: str, data: bytes) -> None:
        (root / name).write_bytes(data)
        paths.append(name)

    good = jpeg_bytes(make_picture(1, (800, 600)))
    hostile = [("bomb.png", png_bomb()), ("truncated.jpg", good[: len(good) // 2]), ("empty.jpg", b""),
               ("html.jpg", b"<!doctype html><html><body>not a picture</body></html>")]
    for n in range(images):
        kind = n % 20  # 11 photos, 4 screenshots, 1 icon or spacer, 2 exact and 1 near duplicate, 1 hostile
        if kind < 11 or not stored:
            name = f"img/photo-{n}.jpg"
            write(name, jpeg_bytes(_photo(n, rng, faces), quality=int(rng.integers(75, 95))))
            stored.append(name)
        elif kind < 15:
            buffer = io.BytesIO()
            _screenshot(rng).save(buffer, "PNG", optimize=False)
            write(f"img/screen-{n}.png", buffer.getvalue())
            stored.append(f"img/screen-{n}.png")
        elif kind == 15:
            icon = Image.new("P", (1, 1)) if n % 2 else make_picture(n, (16, 16))
            buffer = io.BytesIO()
            icon.save(buffer, "GIF" if n % 2 else "PNG")
            write(f"img/icon-{n}.{'gif' if n % 2 else 'png'}", buffer.getvalue())
        elif kind < 18:
            original = stored[int(rng.integers(0, len(stored)))]
            write(f"img/copy-{n}{Path(original).suffix}", (root / original).read_bytes())
        elif kind == 18:
            original = Image.open(root / stored[int(rng.integers(0, len(stored)))]).convert("RGB")
            write(f"img/near-{n}.jpg", jpeg_bytes(original.resize((original.width * 4 // 5, original.height * 4 // 5)), quality=70))
        else:
            name, data = hostile[(n // 20) % len(hostile)]
            write(f"img/hostile-{n}-{name}", data)
    write_pages(root, [paths[i : i + IMAGES_PER_PAGE] for i in range(0, len(paths), IMAGES_PER_PAGE)])
    return paths


def write_pages(root: Path, pages: list[list[str]], *, pages_per_hub: int | None = None) -> None:
    """One HTML page per list of image paths, an index linking them (through hub pages of
    `pages_per_hub` each, when given: an index of thousands of links is not a site) and a
    robots.txt allowing all. benchmarks/memory.py builds its site with it too."""
    for k, page in enumerate(pages):
        imgs = "".join(f'<img src="/{p}" alt="picture {p}">' for p in page)
        (root / f"page-{k}.html").write_text(f"<!doctype html><html><body><h1>page {k}</h1>{imgs}</body></html>")
    targets = [f"page-{k}" for k in range(len(pages))]
    if pages_per_hub:
        hubs = [range(i, min(i + pages_per_hub, len(pages))) for i in range(0, len(pages), pages_per_hub)]
        for h, hub in enumerate(hubs):
            links = "".join(f'<a href="/page-{k}.html">{k}</a> ' for k in hub)
            (root / f"hub-{h}.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
        targets = [f"hub-{h}" for h in range(len(hubs))]
    links = "".join(f'<a href="/{t}.html">{t.split("-")[1]}</a> ' for t in targets)
    (root / "index.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")


def fixture(images: int) -> tuple[Path, list[str]]:
    root = CACHE / f"site-{images}"
    listing = CACHE / f"site-{images}.json"
    if not listing.exists():
        shutil.rmtree(root, ignore_errors=True)
        print(f"generating {images} images under {root} ...", file=sys.stderr)
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text(json.dumps(build_fixture(root, images)))
    return root, json.loads(listing.read_text())


# -- measuring a process tree -----------------------------------------------------------------


@dataclass
class Measured:
    wall: float
    cpu: float  # the whole tree's user + system seconds
    peak_rss: int  # bytes, the tree's largest sum of resident sets seen
    main_cpu: float = 0.0  # the top process alone


def measure(command: list[str], **kwargs) -> Measured:
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    peak, main_cpu, done = [0], [0.0], threading.Event()

    def watch():
        top = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [top, *top.children(recursive=True)]
                main_cpu[0] = sum(top.cpu_times()[:2])
            except psutil.NoSuchProcess:
                break
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            peak[0] = max(peak[0], rss)
            done.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(process.pid, 0)  # its CPU includes every descendant it reaped
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{command[:4]} exited with {os.waitstatus_to_exitcode(status)}")
    return Measured(wall, usage.ru_utime + usage.ru_stime, peak[0], main_cpu[0])


def run_img2dataset(urls: Path, out: Path) -> tuple[Measured, int]:
    shutil.rmtree(out, ignore_errors=True)
    command = [str(I2D_VENV / "bin" / "img2dataset"), "--url_list", str(urls), "--input_format", "txt",
               "--output_folder", str(out), "--output_format", "files", "--processes_count", "2",
               "--thread_count", "32", "--resize_mode", "no", "--disable_all_reencoding", "True",
               "--timeout", "10", "--retries", "0", "--enable_wandb", "False"]
    measured = measure(command, cwd=out.parent)
    saved = [json.loads(p.read_text()) for p in out.rglob("*.json") if not p.name.endswith("_stats.json")]
    return measured, sum(1 for sample in saved if sample.get("status") == "success")


def run_face_pass(folder: Path) -> Measured:
    return measure([sys.executable, __file__, "--face-pass", str(folder)], cwd=REPO)


def run_ours(url: str, gallery: Path) -> tuple[Measured, dict]:
    from indexer.store import Gallery

    shutil.rmtree(gallery, ignore_errors=True)
    command = [sys.executable, "-m", "gallery", "crawl", url + "/", "--allow-loopback", "--delay", "0",
               "--concurrency-per-host", "16", "--gallery", str(gallery)]
    measured = measure(command, cwd=REPO)
    return measured, Gallery(str(gallery), create=False).last_crawl()  # the crawl's own stats


# -- the face pass dataset builders add after img2dataset ---------------------------------------

_detector = None


def _init_faces():
    global _detector
    from indexer.faces import FaceDetector

    _detector = FaceDetector()


def _mask_faces(path: str) -> int:
    from indexer.decode import ImageRejected, decode_bounded
    from indexer.faces import pixelate_faces

    try:
        decoded = decode_bounded(Path(path).read_bytes())
    except ImageRejected:
        return 0
    scan = _detector.scan(decoded.image)
    masked = pixelate_faces(decoded.image, scan.faces) if scan.faces else decoded.image
    masked.save(path + ".masked.jpg", "JPEG", quality=85)
    return len(scan.faces)


def face_pass(folder: Path) -> None:
    import multiprocessing

    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".gif", ".webp") and not p.name.endswith(".masked.jpg"))
    with multiprocessing.get_context("spawn").Pool(2, initializer=_init_faces) as pool:
        pool.map(_mask_faces, files, chunksize=8)


# -- our stages in the crawl process: one crawl with CPU timers around them --------------------


def timed_crawl(out: Path, argv: list[str]) -> None:
    """Run `gallery crawl` in this process with thread-CPU timers around our stages; write the
    totals (seconds) to `out`. Each timer counts only the steps of its own call (a coroutine's
    time while suspended is other work), on the thread that runs it."""
    import atexit
    import functools
    import resource
    from collections import defaultdict

    from scrapy import signals

    import crawler.pipelines.indexer as pipeline_module
    from crawler.downloadermiddlewares.site_policy import SitePolicyMiddleware
    from crawler.spiders.images import ImagesSpider
    from gallery.cli import app
    from indexer.hash_index import NearDuplicateFinder
    from indexer.ingest import GalleryWriter

    totals: dict[str, float] = defaultdict(float)
    lock = threading.Lock()
    active = threading.local()  # keys being timed on this thread: a nested call of one is not counted twice

    def add(key: str, seconds: float) -> None:
        with lock:
            totals[key] += seconds

    def timed(key: str, step):
        """Time one step, unless the same key is already being timed on this thread."""
        keys = active.__dict__.setdefault("keys", set())
        if key in keys:
            return step()
        keys.add(key)
        start = time.thread_time()
        try:
            return step()
        finally:
            keys.discard(key)
            add(key, time.thread_time() - start)

    def sync(fn, key: str):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return timed(key, lambda: fn(*args, **kwargs))
        return wrapper

    def generator(fn, key: str):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            steps = timed(key, lambda: iter(fn(*args, **kwargs)))
            while True:
                try:
                    value = timed(key, lambda: next(steps))
                except StopIteration:
                    return
                yield value
        return wrapper

    class _Steps:
        def __init__(self, coro, key: str):
            self.coro, self.key = coro, key

        def __await__(self):
            steps, value, error = self.coro.__await__(), None, None
            while True:
                try:
                    yielded = timed(self.key, lambda: steps.throw(error) if error is not None else steps.send(value))
                except StopIteration as stop:
                    return stop.value
                try:
                    value, error = (yield yielded), None
                except BaseException as exc:  # handed on to the coroutine, as await would
                    value, error = None, exc

    def coroutine(fn, key: str):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            return await _Steps(fn(*args, **kwargs), key)
        return wrapper

    for name in ("parse_page", "parse_rendered", "parse_stylesheet", "parse_sitemap"):
        setattr(ImagesSpider, name, generator(getattr(ImagesSpider, name), "page parse"))
    SitePolicyMiddleware.process_request = coroutine(SitePolicyMiddleware.process_request, "policy")
    SitePolicyMiddleware.process_response = sync(SitePolicyMiddleware.process_response, "policy")
    pipeline_module.IndexerPipeline.process_item = coroutine(pipeline_module.IndexerPipeline.process_item, "pipeline")
    pipeline_module.sha256_hex = sync(pipeline_module.sha256_hex, "sha256")
    GalleryWriter.write = sync(GalleryWriter.write, "write")
    GalleryWriter._mark_near_duplicates = sync(GalleryWriter._mark_near_duplicates, "matching")
    NearDuplicateFinder.refresh = sync(NearDuplicateFinder.refresh, "matching")

    def process_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process, no children
        return usage.ru_utime + usage.ru_stime

    def mark(when: str) -> None:  # signals fire on the reactor thread
        totals[f"reactor {when}"] = time.thread_time()
        totals[f"process {when}"] = process_cpu()

    from_crawler = ImagesSpider.from_crawler.__func__

    def connected(cls, crawler, *args, **kwargs):
        spider = from_crawler(cls, crawler, *args, **kwargs)
        crawler.signals.connect(lambda **_: mark("opened"), signal=signals.spider_opened, weak=False)
        crawler.signals.connect(lambda **_: mark("closed"), signal=signals.spider_closed, weak=False)
        return spider

    ImagesSpider.from_crawler = classmethod(connected)

    def finish() -> None:
        totals["process exit"] = process_cpu()
        out.write_text(json.dumps(totals))

    atexit.register(finish)
    sys.argv = ["gallery", "crawl", *argv]
    app()


def run_timed(url: str, gallery: Path, out: Path) -> dict[str, float]:
    shutil.rmtree(gallery, ignore_errors=True)
    subprocess.run([sys.executable, __file__, "--timed-crawl", str(out), "--", url + "/", "--allow-loopback", "--delay", "0",
                    "--concurrency-per-host", "16", "--gallery", str(gallery)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


# -- our stages, one by one, on a sample of the fixture ------------------------------------------


def stage_costs(root: Path, paths: list[str], sample: int) -> tuple[dict[str, float], float]:
    """CPU ms per file of each analysis stage, in this process, on the first `sample` files
    (exact duplicates included); and face detection's CPU ms per decoded picture."""
    from indexer.decode import DecodeLimits
    from indexer.faces import FaceDetector

    sys.path.insert(0, str(REPO / "benchmarks"))
    from analysis_cpu import ANALYSIS_STEPS, timed_analysis

    detector, limits = FaceDetector(), DecodeLimits(min_width=32, min_height=32)
    totals = dict.fromkeys(ANALYSIS_STEPS, 0.0)
    seen = decoded_count = 0
    for path in paths[:sample]:
        seen += 1
        decoded_count += timed_analysis((root / path).read_bytes(), totals, limits=limits, detector=detector) is not None
    per_file = {k: 1000 * v / max(1, seen) for k, v in totals.items()}
    return per_file, 1000 * totals["faces"] / max(1, decoded_count)


def main() -> None:
    if sys.argv[1:2] == ["--timed-crawl"]:  # run_timed's child: --timed-crawl OUT -- CRAWL_ARGS...
        timed_crawl(Path(sys.argv[2]), sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stage-sample", type=int, default=200, help="files timed stage by stage")
    parser.add_argument("--face-pass", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.face_pass:
        face_pass(args.face_pass)
        return
    if shutil.which("nginx") is None:
        raise SystemExit("benchmarks/throughput.py serves its site with Debian's nginx: apt-get install nginx")
    if not (I2D_VENV / "bin" / "img2dataset").exists():
        print("installing the benchmark group (img2dataset) into benchmarks/.img2dataset-venv ...", file=sys.stderr)
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(I2D_VENV)}
        subprocess.run(["uv", "sync", "--frozen", "--only-group", "benchmark", "--quiet"], cwd=REPO, env=env, check=True)
    root, paths = fixture(args.images)

    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp_, nginx_sites({"127.0.0.1": root}, Path(tmp_)) as (url,):
        tmp = Path(tmp_)
        urls = tmp / "urls.txt"
        urls.write_text("".join(f"{url}/{p}\n" for p in paths))
        theirs, ours = [], []
        for run in range(args.runs):
            order = ("theirs", "ours") if run % 2 == 0 else ("ours", "theirs")
            for side in order:
                if side == "theirs":
                    i2d, fetched = run_img2dataset(urls, tmp / "i2d")
                    faces = run_face_pass(tmp / "i2d")
                    theirs.append((i2d, faces, fetched))
                else:
                    ours.append(run_ours(url, tmp / "gallery"))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
        # Not timed with the others: its timers cost a little. Where our crawl process spends its CPU.
        timers = run_timed(url, tmp / "gallery", tmp / "stages.json")

    n = len(paths)
    print(f"{n} image URLs on {-(-n // IMAGES_PER_PAGE)} pages; nginx on 127.0.0.1; {args.runs} runs each, alternating; "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
    print(f"{'':<36}{'images/s':>10}{'wall s':>20}{'CPU ms/image':>14}{'peak RSS MB':>13}")

    def row(name: str, walls: list[float], cpus: list[float], rss: list[int]) -> float:
        rate = n / statistics.median(walls)
        print(f"{name:<36}{rate:>10.1f}{f'{statistics.median(walls):.1f} ({min(walls):.1f}-{max(walls):.1f})':>20}"
              f"{1000 * statistics.median(cpus) / n:>14.1f}{max(rss) / 2**20:>13.0f}")
        return rate

    row("img2dataset", [t[0].wall for t in theirs], [t[0].cpu for t in theirs], [t[0].peak_rss for t in theirs])
    row("  face pass after it", [t[1].wall for t in theirs], [t[1].cpu for t in theirs], [t[1].peak_rss for t in theirs])
    base = row("img2dataset + face pass", [t[0].wall + t[1].wall for t in theirs], [t[0].cpu + t[1].cpu for t in theirs],
               [max(t[0].peak_rss, t[1].peak_rss) for t in theirs])
    mine = row("gallery crawl", [m.wall for m, _ in ours], [m.cpu for m, _ in ours], [m.peak_rss for m, _ in ours])
    print(f"img2dataset downloaded {statistics.median(t[2] for t in theirs):.0f}; ours: "
          + ", ".join(f"{k} {statistics.median(s.get(k, 0) for _, s in ours):.0f}" for k in
                      ("indexer/stored", "indexer/duplicate/exact", "indexer/duplicate/near", "indexer/skipped/too_small"))
          + f", before decode {statistics.median(sum(v for k, v in s.items() if k.startswith('indexer/before_decode/')) for _, s in ours):.0f}")

    def ms(seconds: float) -> float:
        return 1000 * seconds / n

    reactor = timers["reactor closed"] - timers["reactor opened"]
    process = timers["process closed"] - timers["process opened"]
    ours_cpu = ms(statistics.median(m.cpu for m, _ in ours))
    print("our CPU ms per image URL, by stage:")
    print("  the crawl process, in one more crawl with timers on its stages:")
    crawl_stages = {
        "start-up (imports, gallery, workers started)": timers["process opened"],
        "fetch + Scrapy engine": reactor - timers["policy"] - timers["page parse"] - timers["pipeline"],
        "policy (request + response checks)": timers["policy"],
        "page parse (links, images, claims)": timers["page parse"],
        "sha256": timers["sha256"],
        "pipeline hand-off (sightings, counts)": timers["pipeline"] - timers["sha256"],
        "  = the reactor thread": reactor,
        "matching (near-duplicate lookups)": timers["matching"],
        "write (LanceDB appends)": timers["write"] - timers["matching"],
        "other threads (LanceDB's own, feeding the workers, DNS, the last write and indexes at close)": process - reactor - timers["write"],
        "after the spider closed (the run's record, the summary)": timers["process exit"] - timers["process closed"],
        "  = the crawl process": timers["process exit"],
    }
    for stage, seconds in crawl_stages.items():
        print(f"    {stage:<90}{ms(seconds):>8.1f}")
    analysis, faces_per_picture = stage_costs(root, paths, args.stage_sample)
    print(f"  the analysis workers' stages, measured in this process on the first {min(args.stage_sample, n)} files"
          " (per file, duplicates and hostile files included):")
    for stage, value in analysis.items():
        if stage != "sha256":  # the crawl computes it in its own process, above
            print(f"    {stage:<90}{value:>8.1f}")
    # Face detection as the crawl does it: once per picture it stores (exact duplicates are known by sha256).
    stored = statistics.median(s.get("indexer/stored", 0) for _, s in ours)
    faces = faces_per_picture * stored / n
    print(f"  whole tree, timed runs: {ours_cpu:.1f}; of which face detection ({faces_per_picture:.1f} ms on each of "
          f"{stored:.0f} pictures stored): {faces:.1f}")
    theirs_cpu = ms(statistics.median(t[0].cpu for t in theirs))
    print(f"non_face_cpu_ms_per_image vs img2dataset_cpu_ms_per_image: {ours_cpu - faces:.1f} vs {theirs_cpu:.1f}")
    print(f"ratio_vs_img2dataset: {mine / base:.2f}")


if __name__ == "__main__":
    main()
