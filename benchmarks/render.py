"""Rendering: memory over a long run, CPU per rendered page, and auto vs never on a mixed site.

Each crawl runs in its own process (a Twisted reactor starts once per process) against a local
fixture site, with no politeness delay. Printed, each as a ratio against the baseline run in
the same invocation:
  - a site of script-built pages crawled with --render never (baseline), always and auto, the
    indexer pipeline switched off so that what is measured is fetching and rendering: wall
    time, CPU of the whole process tree (Chromium and the Playwright driver included) and CPU
    per rendered page;
  - the resident memory of the whole process tree, sampled every 100 rendered pages, with
    its spread from page 500 on (the issue asks for flat within +-10%);
  - a mixed site (10% script-built) crawled as an operator would, indexer included, with
    never (baseline) and auto: total crawl time and how many of its images each found; and
    the same without the indexer, where rendering weighs most.

    .venv/bin/python benchmarks/render.py            # small: a few minutes here
    .venv/bin/python benchmarks/render.py --full     # 2,000 script-built pages: about 12 minutes
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gallery.demo import make_picture  # noqa: E402
from gallery.site import StaticSite  # noqa: E402
from tests.fixture_site import jpeg_bytes  # noqa: E402

IMAGES_PER_PAGE = 2
SAMPLE_EVERY = 100  # rendered pages between two memory samples

_GALLERY_JS = """
const box = document.getElementById("gallery");
fetch(box.dataset.src).then(r => r.json()).then(items => {
  for (const src of items) { const img = document.createElement("img"); img.src = src; box.appendChild(img); }
});
"""


def build_site(root: Path, *, pages: int, script_share: float) -> tuple[Path, int]:
    """`pages` pages linked from the index, every 1/script_share-th one script-built.

    Every page shows IMAGES_PER_PAGE images of its own (one small file's bytes under many
    names); returns the site root and the number of image URLs a complete crawl finds."""
    for folder in ("p", "img", "api", "js"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    picture = jpeg_bytes(make_picture(1, (64, 48)))
    (root / "js" / "gallery.js").write_text(_GALLERY_JS)
    every = round(1 / script_share)
    for n in range(pages):
        images = [f"/img/{n}-{k}.jpg" for k in range(IMAGES_PER_PAGE)]
        for path in images:
            (root / path.lstrip("/")).write_bytes(picture)
        if n % every == 0:
            (root / "api" / f"{n}.json").write_text(json.dumps(images))
            body = f'<h1>Page {n}</h1><div id="gallery" data-src="/api/{n}.json"></div><script src="/js/gallery.js"></script>'
        else:
            body = f"<h1>Page {n}</h1>" + "".join(f'<img src="{p}" alt="picture">' for p in images)
            body += "<p>" + "Some words about the pictures. " * 20 + "</p><script>document.title += ' ok';</script>"
        (root / "p" / f"{n}.html").write_text(f"<!doctype html><html><body>{body}</body></html>")
    links = "".join(f'<a href="/p/{n}.html">{n}</a> ' for n in range(pages))
    (root / "index.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    return root, pages * IMAGES_PER_PAGE


@dataclass
class Run:
    name: str
    wall: float = 0.0
    cpu: float = 0.0
    renders: int = 0
    pages: int = 0
    images_found: int = 0
    memory: list[tuple[int, float, float]] = field(default_factory=list)  # (renders, RSS MiB, PSS MiB)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _memory(pid: int) -> tuple[float, float]:
    rss = pss = 0
    for proc in _tree(pid):
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss / 2**20, pss / 2**20


def crawl(name: str, site: StaticSite, *, mode: str, workdir: Path, index: bool = False, dom_quiet: float | None = None) -> Run:
    """One crawl in a child process; memory sampled every SAMPLE_EVERY renders, seen at the site
    as the script's request for its page's data. `dom_quiet`: the render's DOM quiet window in
    seconds, for measuring other choices than crawler/render/session.py's."""
    run = Run(name)
    before = len(site.requests)
    spec = json.dumps(
        {"seed": site.url + "/", "gallery": str(workdir / name.replace(" ", "-")), "mode": mode, "index": index, "dom_quiet": dom_quiet}
    )
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--child", spec], stdout=subprocess.PIPE, text=True, cwd=REPO)
    stop = threading.Event()

    cpu: dict[int, float] = {}  # pid -> CPU seconds, as last seen

    def sample() -> None:
        next_sample = SAMPLE_EVERY
        while not stop.wait(0.05):
            for proc in _tree(child.pid):
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                cpu[proc.pid] = times.user + times.system
            renders = sum(1 for path in site.requests[before:] if path.startswith("/api/"))
            if renders >= next_sample:
                run.memory.append((renders, *_memory(child.pid)))
                next_sample += SAMPLE_EVERY

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = child.stdout.read()
    # wait4 gives the child's CPU with that of the descendants it reaped; Chromium's renderers
    # are forked by its zygote and never reaped up this chain, so the polled per-process times
    # (which miss the last 50 ms of each process) are added for those wait4 did not count.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    run.wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{name}: crawl exited {child.returncode}")
    stats = json.loads(output)
    run.cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu.values()))
    run.renders = stats.get("render/pages", 0)
    run.pages = stats.get("crawl/pages", 0)
    run.images_found = len({p for p in site.requests[before:] if p.startswith("/img/")})
    return run


def child_main(spec: str) -> None:
    from crawler.job import CrawlJob, Politeness
    from crawler.run import run_crawl

    args = json.loads(spec)
    if args.get("dom_quiet") is not None:
        from crawler.render import session

        session.DOM_QUIET = args["dom_quiet"]
    job = CrawlJob(
        seeds=(args["seed"],), gallery=args["gallery"], allow_loopback=True, render=args["mode"], politeness=Politeness(delay=0)
    )
    stats = run_crawl(job, settings={"LOG_LEVEL": "WARNING", **({} if args["index"] else {"ITEM_PIPELINES": {}})})
    print(json.dumps({k: v for k, v in stats.items() if isinstance(v, (int, float))}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=200, help="script-built pages (memory, CPU)")
    parser.add_argument("--mixed-pages", type=int, default=300, help="pages of the mixed site, 10%% script-built")
    parser.add_argument("--full", action="store_true", help="2,000 script-built pages (the memory flatness check)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return
    if args.full:
        args.pages = 2000

    with tempfile.TemporaryDirectory(prefix="render-bench-") as tmp:
        tmp = Path(tmp)
        script_root, _ = build_site(tmp / "script", pages=args.pages, script_share=1.0)
        mixed_root, mixed_images = build_site(tmp / "mixed", pages=args.mixed_pages, script_share=0.1)
        with StaticSite(script_root) as script_site, StaticSite(mixed_root) as mixed_site:
            never = crawl("script never", script_site, mode="never", workdir=tmp)
            always = crawl("script always", script_site, mode="always", workdir=tmp)
            # On a site where every page is script-built, auto ends up where always is.
            script_runs = (never, always) if args.full else (never, always, crawl("script auto", script_site, mode="auto", workdir=tmp))
            mixed = [crawl(f"mixed {mode}", mixed_site, mode=mode, workdir=tmp, index=True) for mode in ("never", "auto")]
            mixed_fetch = [crawl(f"mixed {mode} fetch", mixed_site, mode=mode, workdir=tmp) for mode in ("never", "auto")]

    print(f"\nscript-built site, {args.pages} pages (baseline: --render never)")
    print(f"{'case':<16}{'renders':>8}{'wall s':>8}{'CPU s':>8}{'CPU s/render':>14}{'wall vs base':>14}{'CPU vs base':>13}")
    for run in script_runs:
        per_render = (run.cpu - never.cpu) / run.renders if run.renders else 0.0
        print(
            f"{run.name:<16}{run.renders:>8}{run.wall:>8.1f}{run.cpu:>8.1f}{per_render:>14.3f}"
            f"{run.wall / never.wall:>13.2f}x{run.cpu / never.cpu:>12.2f}x"
        )
    print("  CPU s/render: whole process tree, less the baseline's, per rendered page")

    print(f"\nmemory of the whole process tree, --render always, every {SAMPLE_EVERY} rendered pages")
    print(f"{'renders':>8}{'RSS MiB':>10}{'PSS MiB':>10}{'PSS vs first':>14}")
    for renders, rss, pss in always.memory:
        print(f"{renders:>8}{rss:>10.0f}{pss:>10.0f}{pss / always.memory[0][2]:>13.2f}x")
    late = [pss for renders, _, pss in always.memory if renders >= 500]
    if len(late) >= 2:
        mean = sum(late) / len(late)
        print(f"  from page 500 on: PSS within {min(late) / mean - 1:+.1%} .. {max(late) / mean - 1:+.1%} of its mean")
    else:
        print("  (fewer than 500 rendered pages: run with --full for the flatness check)")

    print(f"\nmixed site, {args.mixed_pages} pages, 10% script-built (baseline: --render never)")
    print(f"{'case':<20}{'renders':>8}{'wall s':>8}{'images':>12}{'wall vs base':>14}")
    for base, run in (*zip([mixed[0]] * 2, mixed), *zip([mixed_fetch[0]] * 2, mixed_fetch)):
        found = f"{run.images_found}/{mixed_images}"
        print(f"{run.name:<20}{run.renders:>8}{run.wall:>8.1f}{found:>12}{run.wall / base.wall:>13.2f}x")
    print("  'fetch': the indexer pipeline switched off")


if __name__ == "__main__":
    main()
