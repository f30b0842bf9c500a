"""Coverage: the share of the images a browser shows that the crawler puts in the gallery.

A corpus of pages, one group per pattern (plain static pages, the extraction-only sources, and
pages built on real front-end libraries committed under coverage_site/vendor/), is served on
127.0.0.1. The oracle is Chromium itself: each page loaded with images on, swept to the end
until nothing changes for 2 s; its images are the image requests that succeeded, the
`currentSrc` of visible <img> elements and the computed background images of visible
elements. The crawler's recall is the share of the oracle's images that land in the gallery
(same URL, or same content by sha256), for `--render auto` and `--render never`.

Also printed: the share of pages rendered (per pattern, and on benchmarks/render.py's mixed site
where 10% of the pages need it) and the CPU per rendered page (auto minus never, the whole
process tree, on the mixed site with the indexer off). Last line: `coverage_recall_auto: X.XX`.

    .venv/bin/python benchmarks/coverage.py              # a few minutes here
    .venv/bin/python benchmarks/coverage.py --patterns static_img,vue_app --mixed-pages 0
"""

import argparse
import asyncio
import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import render as render_bench  # noqa: E402
from crawler.config import CHROMIUM  # noqa: E402
from gallery.demo import make_picture  # noqa: E402
from gallery.site import StaticSite  # noqa: E402
from indexer.store import Gallery  # noqa: E402
from tests.fixture_site import jpeg_bytes  # noqa: E402

VENDOR = Path(__file__).resolve().parent / "coverage_site" / "vendor"
ORACLE_QUIET = 2.0  # seconds without any change before the oracle stops looking
ORACLE_CAP = 30.0  # seconds per page at most
ORACLE_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
# Patterns whose images a crawl must find without rendering (`never` must be 1.00 there).
STATIC_PATTERNS = (
    "static_img", "thumb_link", "picture_srcset", "css_inline", "css_style_block", "css_linked", "svg_image",
    "video_poster", "meta_jsonld", "lazysizes", "swiper", "masonry", "photoswipe",
)  # fmt: skip


class Corpus:
    """Writes pages and their images; every image is a picture of its own."""

    def __init__(self, root: Path):
        self.root = root
        self.pages: dict[str, list[str]] = {}  # pattern -> page paths
        self._seed = 2000
        for folder in ("img", "p", "css", "api", "vendor"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for path in VENDOR.iterdir():
            shutil.copy(path, root / "vendor" / path.name)

    def image(self, name: str) -> str:
        self._seed += 1
        path = f"/img/{name}-{self._seed}.jpg"
        (self.root / path.lstrip("/")).write_bytes(jpeg_bytes(make_picture(self._seed, (160, 120))))
        return path

    def page(self, pattern: str, body: str, *, head: str = "") -> None:
        n = len(self.pages.setdefault(pattern, []))
        path = f"/p/{pattern}-{n}.html"
        html = f'<!doctype html><html><head><meta charset="utf-8">{head}</head><body><h1>{pattern} {n}</h1>{body}</body></html>'
        (self.root / path.lstrip("/")).write_text(html)
        self.pages[pattern].append(path)

    def write_index(self) -> None:
        links = " ".join(f'<a href="{p}">{p}</a>' for paths in self.pages.values() for p in paths)
        (self.root / "index.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
        (self.root / "robots.txt").write_text("User-agent: *\nAllow: /\n")


def _words(n: int = 30) -> str:
    return "<p>" + "Words about the pictures on this page. " * n + "</p>"


def build_corpus(root: Path, *, pages_per_pattern: int = 2) -> Corpus:
    c = Corpus(root)
    for _ in range(pages_per_pattern):
        # -- plain static pages and extraction-only sources (no script at all) --
        c.page("static_img", "".join(f'<img src="{c.image("s")}" alt="s">' for _ in range(3)) + _words())
        c.page("thumb_link", "".join(f'<a href="{c.image("large")}"><img src="{c.image("thumb")}"></a>' for _ in range(3)))
        small, large = c.image("small"), c.image("large")
        c.page(
            "picture_srcset",
            f'<img srcset="{small} 160w, {large} 1600w" sizes="100vw" src="{small}">'
            f'<picture><source srcset="{c.image("pic")}"><img src="{c.image("fallback")}"></picture>',
        )
        c.page("css_inline", f'<div style="width:200px;height:100px;background-image:url(\'{c.image("inline")}\')"></div>' + _words())
        c.page(
            "css_style_block",
            '<div class="hero">hero</div>',
            head=f'<style>.hero {{ height: 120px; background: #333 url("{c.image("block")}") no-repeat; }}</style>',
        )
        n = len(c.pages.get("css_linked", []))
        (c.root / "css" / f"site-{n}.css").write_text(f".banner {{ height: 120px; background-image: url(..{c.image('linked')}) }}")
        c.page("css_linked", '<div class="banner">banner</div>', head=f'<link rel="stylesheet" href="/css/site-{n}.css">')
        c.page("svg_image", f'<svg width="160" height="120"><image href="{c.image("svg")}" width="160" height="120"/></svg>')
        c.page("video_poster", f'<video width="160" height="120" poster="{c.image("poster")}"></video>')
        jsonld = json.dumps({"@type": "Article", "image": {"@type": "ImageObject", "contentUrl": c.image("jsonld")}})
        c.page(
            "meta_jsonld",
            f'<img src="{c.image("shown")}">',
            head=f'<meta property="og:image" content="{c.image("og")}"><meta name="twitter:image" content="{c.image("tw")}">'
            f'<script type="application/ld+json">{jsonld}</script><link rel="image_src" href="{c.image("src")}">',
        )
        # -- real front-end libraries --
        imgs = "".join(f'<div style="height:900px"><img class="lazyload" data-src="{c.image("lazysizes")}"></div>' for _ in range(3))
        c.page("lazysizes", imgs + '<script src="/vendor/lazysizes.min.js" async></script>')
        items = "".join(f'<div style="height:900px"><img class="lazy" data-src="{c.image("vll")}"></div>' for _ in range(2))
        items += f'<div class="lazy" style="height:200px" data-bg="{c.image("vllbg")}"></div>'
        c.page("vanilla_lazyload", items + '<script src="/vendor/lazyload.min.js"></script><script>new LazyLoad({});</script>')
        slides = "".join(f'<div class="swiper-slide"><img src="{c.image("slide")}"></div>' for _ in range(4))
        c.page(
            "swiper",
            f'<div class="swiper" style="width:400px;height:300px"><div class="swiper-wrapper">{slides}</div></div>'
            '<script src="/vendor/swiper-bundle.min.js"></script>'
            "<script>new Swiper('.swiper', {loop: true, autoplay: {delay: 500}});</script>",
            head='<link rel="stylesheet" href="/vendor/swiper-bundle.min.css">',
        )
        tiles = "".join(f'<div class="tile" style="width:160px"><img src="{c.image("tile")}"></div>' for _ in range(5))
        c.page(
            "masonry",
            f'<div class="grid">{tiles}</div><script src="/vendor/masonry.pkgd.min.js"></script>'
            '<script src="/vendor/imagesloaded.pkgd.min.js"></script><script>const grid = document.querySelector(".grid");'
            " imagesLoaded(grid, () => new Masonry(grid, {itemSelector: '.tile', columnWidth: 160}));</script>",
        )
        thumbs = "".join(
            f'<a href="{c.image("pswp-large")}" data-pswp-width="1600" data-pswp-height="1200"><img src="{c.image("pswp")}"></a>'
            for _ in range(3)
        )
        c.page(
            "photoswipe",
            f'<div id="gallery">{thumbs}</div><script src="/vendor/photoswipe.umd.min.js"></script>'
            '<script src="/vendor/photoswipe-lightbox.umd.min.js"></script><script>new PhotoSwipeLightbox({gallery: "#gallery",'
            " children: 'a', pswpModule: PhotoSwipe}).init();</script>",
            head='<link rel="stylesheet" href="/vendor/photoswipe.css">',
        )
        api = f"/api/vue-{len(c.pages.get('vue_app', []))}.json"
        (c.root / api.lstrip("/")).write_text(json.dumps([{"src": c.image("vue"), "alt": "vue"} for _ in range(4)]))
        c.page(
            "vue_app",
            '<div id="app"><img v-for="p in photos" :key="p.src" :src="p.src" :alt="p.alt"></div>'
            '<script src="/vendor/vue.global.prod.js"></script><script>Vue.createApp({data: () => ({photos: []}),'
            f' mounted() {{ fetch("{api}").then(r => r.json()).then(p => {{ this.photos = p; }}); }}}}).mount("#app");</script>',
        )
        api = f"/api/feed-{len(c.pages.get('json_feed', []))}.json"
        (c.root / api.lstrip("/")).write_text(json.dumps([c.image("feed") for _ in range(3)]))
        c.page(
            "json_feed",
            '<div id="photos"></div><script>fetch("' + api + '").then(r => r.json()).then(list => { for (const src of list) {'
            ' const img = document.createElement("img"); img.src = src; document.getElementById("photos").appendChild(img); } });</script>',
        )
        # Infinite scroll (plain JS: the Infinite Scroll library is GPL-3.0, not vendored here).
        pages = [[c.image("scroll") for _ in range(2)] for _ in range(3)]
        base = f"/api/scroll-{len(c.pages.get('infinite_scroll', []))}"
        for k, srcs in enumerate(pages):
            (c.root / f"{base.lstrip('/')}-{k}.json").write_text(json.dumps(srcs))
        c.page(
            "infinite_scroll",
            '<div id="feed"></div><div id="more" style="height:10px"></div><script>let next = 0; let busy = false;'
            f' function load() {{ if (busy || next >= {len(pages)}) return; busy = true;'
            f' fetch(`{base}-${{next++}}.json`).then(r => r.json()).then(list => {{ for (const src of list) {{'
            ' const d = document.createElement("div"); d.style.height = "900px"; const img = document.createElement("img");'
            ' img.src = src; d.appendChild(img); document.getElementById("feed").appendChild(d); } busy = false; }); }'
            " new IntersectionObserver(e => { if (e[0].isIntersecting) load(); }).observe(document.getElementById('more'));"
            " load();</script>",
        )
        c.page(
            "timer",
            "<p>timer</p><script>document.addEventListener('DOMContentLoaded', () => setTimeout(() => {"
            f' const img = document.createElement("img"); img.src = "{c.image("timer")}"; document.body.appendChild(img);'
            " }, 300));</script>",
        )
        # Images appended over animation frames, about 150 ms apart: no timer, no request between
        # them, so only the DOM quiet window keeps the render waiting for the next one.
        frames = ", ".join(f'"{c.image("frames")}"' for _ in range(3))
        c.page(
            "animation_frames",
            f"<p>frames</p><script>const srcs = [{frames}]; let n = 0, at = performance.now();"
            " function step(now) { if (now - at >= 150) { at = now; const img = document.createElement('img');"
            " img.src = srcs[n++]; document.body.appendChild(img); } if (n < srcs.length) requestAnimationFrame(step); }"
            " requestAnimationFrame(step);</script>",
        )
        c.page(
            "script_background",
            f'<div id="hero" style="width:200px;height:100px" data-hero="{c.image("scriptbg")}"></div><script>'
            "const h = document.getElementById('hero'); h.style.backgroundImage = `url(${h.dataset.hero})`;</script>",
        )
    c.write_index()
    return c


# -- the oracle -------------------------------------------------------------------------

_COLLECT = """() => {
  const out = new Set();
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  for (const img of document.images) if (img.currentSrc && visible(img)) out.add(img.currentSrc);
  for (const el of document.querySelectorAll('*')) {
    const bg = getComputedStyle(el).backgroundImage;
    if (bg && bg !== 'none' && visible(el)) for (const m of bg.matchAll(/url\\("?([^")]*)"?\\)/g)) out.add(m[1]);
  }
  return [...out];
}"""
_STATE = "() => [document.documentElement.scrollHeight, document.getElementsByTagName('*').length]"
_SWEEP = """async () => { const step = Math.max(innerHeight, 200);
  for (let y = 0; y <= document.documentElement.scrollHeight; y += step) {
    scrollTo(0, y); await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); } }"""


async def _oracle_page(context, url: str) -> set[str]:
    page = await context.new_page()
    requested: set[str] = set()

    def on_response(response):
        if response.request.resource_type == "image" and response.status < 400:
            requested.add(response.url)

    page.on("response", on_response)
    try:
        await page.goto(url, wait_until="load", timeout=30_000)
        start = changed = time.monotonic()
        last = None
        while time.monotonic() - changed < ORACLE_QUIET and time.monotonic() - start < ORACLE_CAP:
            await page.evaluate(_SWEEP)
            await asyncio.sleep(0.25)
            state = (tuple(await page.evaluate(_STATE)), len(requested), len(await page.evaluate(_COLLECT)))
            if state != last:
                last, changed = state, time.monotonic()
        shown = set(await page.evaluate(_COLLECT))
    finally:
        await page.close()
    return {urldefrag(u)[0] for u in requested | shown if u.startswith("http")}


async def run_oracle(site_url: str, paths: list[str]) -> dict[str, set[str]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ORACLE_ARGS)
        context = await browser.new_context()
        limit = asyncio.Semaphore(4)

        async def one(path):
            async with limit:
                return path, await _oracle_page(context, site_url + path)

        results = dict(await asyncio.gather(*(one(p) for p in paths)))
        await browser.close()
    return results


# -- recall -----------------------------------------------------------------------------


def _sha256_of(site_root: Path, url: str) -> str | None:
    path = site_root / urlsplit(url).path.lstrip("/")
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _gallery_contents(path: Path) -> tuple[set[str], set[str]]:
    store = Gallery(str(path), create=False)
    urls = set(store.sightings.to_arrow().column("image_url").to_pylist())
    ids = set(store.images.to_arrow().column("image_id").to_pylist())
    return urls, ids


def _rendered_pages(requests: list[str], paths: list[str]) -> set[str]:
    """Pages fetched twice in one crawl: once by Scrapy, once by the browser rendering it."""
    counts = Counter(requests)
    return {p for p in paths if counts[p] >= 2}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages-per-pattern", type=int, default=2)
    parser.add_argument("--patterns", help="comma-separated subset of patterns")
    parser.add_argument("--mixed-pages", type=int, default=100, help="pages of the 10%%-script mixed site (0: skip)")
    parser.add_argument(
        "--dom-quiet", help="comma-separated DOM quiet windows (s) to compare with --render auto, e.g. 0.1,0.2,0.5"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coverage-"))
    corpus = build_corpus(work / "site", pages_per_pattern=args.pages_per_pattern)
    if args.patterns:
        wanted = set(args.patterns.split(","))
        corpus.pages = {k: v for k, v in corpus.pages.items() if k in wanted}
        corpus.write_index()
    all_paths = [p for paths in corpus.pages.values() for p in paths]
    with StaticSite(corpus.root) as site:
        started = time.perf_counter()
        oracle = asyncio.run(run_oracle(site.url, all_paths))
        print(f"oracle: {sum(map(len, oracle.values()))} images on {len(all_paths)} pages, {time.perf_counter() - started:.0f} s")
        results, runs = {}, {}
        for mode in ("auto", "never"):
            before = len(site.requests)
            runs[mode] = render_bench.crawl(f"coverage {mode}", site, mode=mode, workdir=work, index=True)
            results[mode] = (_gallery_contents(work / f"coverage-{mode}"), _rendered_pages(site.requests[before:], all_paths))
        if args.dom_quiet:
            _compare_dom_quiet(site, corpus.root, oracle, all_paths, work, args.dom_quiet)
    print()
    print(f"{'pattern':<18} {'pages':>5} {'oracle':>6} {'auto':>6} {'never':>6} {'rendered':>9}")
    totals = Counter()
    for pattern, paths in corpus.pages.items():
        row = Counter()
        for path in paths:
            for url in oracle[path]:
                row["oracle"] += 1
                for mode in ("auto", "never"):
                    (urls, ids), _ = results[mode]
                    row[mode] += url in urls or _sha256_of(corpus.root, url) in ids
        rendered = len(results["auto"][1] & set(paths))
        totals.update(row)
        recall = {m: row[m] / row["oracle"] if row["oracle"] else 1.0 for m in ("auto", "never")}
        print(f"{pattern:<18} {len(paths):>5} {row['oracle']:>6} {recall['auto']:>6.2f} {recall['never']:>6.2f} {rendered:>5}/{len(paths):<3}")
    recall_auto = totals["auto"] / totals["oracle"] if totals["oracle"] else 1.0
    recall_never = totals["never"] / totals["oracle"] if totals["oracle"] else 1.0
    rendered_all = len(results["auto"][1])
    print(f"{'all':<18} {len(all_paths):>5} {totals['oracle']:>6} {recall_auto:>6.2f} {recall_never:>6.2f} {rendered_all:>5}/{len(all_paths):<3}")
    print()
    print(f"crawl CPU (indexer on): auto {runs['auto'].cpu:.1f} core-s, never {runs['never'].cpu:.1f} core-s, "
          f"{runs['auto'].renders} rendered")  # fmt: skip
    if args.mixed_pages:
        root, _ = render_bench.build_site(work / "mixed", pages=args.mixed_pages, script_share=0.1)
        with StaticSite(root) as mixed:
            never = render_bench.crawl("mixed never", mixed, mode="never", workdir=work)
            auto = render_bench.crawl("mixed auto", mixed, mode="auto", workdir=work)
        per_render = (auto.cpu - never.cpu) / auto.renders if auto.renders else float("nan")
        print(f"mixed site (10% script-built, {auto.pages} pages): rendered {auto.renders / max(auto.pages, 1):.2f} of pages; "
              f"CPU per rendered page {per_render:.3f} core-s (auto {auto.cpu:.1f} - never {never.cpu:.1f}, indexer off)")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    print(f"coverage_recall_never_static: {_static_recall(corpus, oracle, results):.2f}")
    print(f"coverage_recall_auto: {recall_auto:.2f}")


def _compare_dom_quiet(site: StaticSite, site_root: Path, oracle, paths: list[str], work: Path, windows: str) -> None:
    """The render's DOM quiet window against recall, wall time and CPU: how the window was chosen."""
    print(f"{'DOM quiet s':>11} {'recall':>7} {'wall s':>7} {'CPU core-s':>11} {'renders':>8}")
    wanted = [url for path in paths for url in oracle[path]]
    for window in (float(w) for w in windows.split(",")):
        name = f"coverage auto quiet {window}"
        run = render_bench.crawl(name, site, mode="auto", workdir=work, index=True, dom_quiet=window)
        urls, ids = _gallery_contents(work / name.replace(" ", "-"))
        found = sum(url in urls or _sha256_of(site_root, url) in ids for url in wanted)
        print(f"{window:>11.2f} {found / max(len(wanted), 1):>7.2f} {run.wall:>7.1f} {run.cpu:>11.1f} {run.renders:>8}")


def _static_recall(corpus: Corpus, oracle, results) -> float:
    (urls, ids), _ = results["never"]
    found = total = 0
    for pattern in STATIC_PATTERNS:
        for path in corpus.pages.get(pattern, []):
            for url in oracle[path]:
                total += 1
                found += url in urls or _sha256_of(corpus.root, url) in ids
    return found / total if total else 1.0


if __name__ == "__main__":
    main()
