"""A browser that dies mid-crawl: the renders it was doing are counted skips, scrapy-playwright
launches a new one, and the crawl goes on rendering the pages that are left."""

import json
import signal
import subprocess
import sys
import time

import psutil

from gallery.demo import make_picture
from gallery.site import Canned, StaticSite
from indexer.store import Gallery
from tests.conftest import REPO
from tests.fixture_site import jpeg_bytes

PAGES = 12
API_DELAY = 1.0  # seconds each page's data takes: renders are in flight when the browser dies


def _build_site(root):
    (root / "img").mkdir(parents=True)
    for n in range(PAGES):
        (root / "img" / f"p{n}.jpg").write_bytes(jpeg_bytes(make_picture(900 + n)))
        script = (
            f'fetch("/api/p{n}.json").then(r => r.json()).then(src => {{'
            ' const img = document.createElement("img"); img.src = src; document.body.appendChild(img); });'
        )
        (root / f"p{n}.html").write_text(f"<!doctype html><html><body><script>{script}</script></body></html>")
    links = " ".join(f'<a href="p{n}.html">page {n}</a>' for n in range(PAGES))
    (root / "index.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    return {f"/api/p{n}.json": Canned(200, json.dumps(f"/img/p{n}.jpg").encode(), "application/json", delay=API_DELAY) for n in range(PAGES)}


def _browser_processes(root_pid: int) -> list[psutil.Process]:
    """Chromium's main process under the crawl (its helpers carry a --type= flag)."""
    found = []
    for child in psutil.Process(root_pid).children(recursive=True):
        try:
            if "chrom" in child.name() and not any(arg.startswith("--type=") for arg in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def test_a_crashed_browser_is_relaunched_and_the_crawl_goes_on(tmp_path):
    root = tmp_path / "site"
    canned = _build_site(root)
    gallery = tmp_path / "gallery"
    with StaticSite(root, canned=canned) as site:
        crawl = subprocess.Popen(
            [sys.executable, "-m", "gallery", "crawl", site.url + "/", "--gallery", str(gallery), "--allow-loopback",
             "--delay", "0", "--render", "always", "--render-budget", "10", "--json"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            # Kill the browser once it is rendering: a page has asked for its data.
            deadline = time.monotonic() + 120
            while not any(path.startswith("/api/") for path in site.requests):
                assert time.monotonic() < deadline and crawl.poll() is None, "no page was rendered"
                time.sleep(0.05)
            browsers = _browser_processes(crawl.pid)
            assert len(browsers) == 1
            browsers[0].send_signal(signal.SIGKILL)
            stdout, stderr = crawl.communicate(timeout=240)
        finally:
            if crawl.poll() is None:
                crawl.kill()
    assert crawl.returncode == 0, stderr[-3000:]
    assert not [line for line in stderr.splitlines() if "] ERROR: " in line or "CRITICAL" in line], stderr[-5000:]
    summary = json.loads(stdout)
    stats = Gallery(str(gallery), create=False).last_crawl()
    assert stats["playwright/browser_count"] == 2
    # Renders the dead browser was doing are retried in the new one (scrapy-playwright retries a
    # closed target); one that runs out of retries is a counted skip, not an error.
    assert set(summary["render"]["skipped"]) <= {"browser_crashed"}
    lost = summary["render"]["skipped"].get("browser_crashed", 0)
    assert lost <= 4  # at most GALLERY_RENDER_MAX_PAGES were in flight
    assert summary["render"]["pages"] == PAGES + 1 - lost  # the index is rendered too
    assert summary["render"]["pages_open_at_close"] == 0
    sightings = Gallery(str(gallery), create=False).sightings.to_arrow().to_pylist()
    assert len({s["page_url"] for s in sightings}) >= PAGES - lost
    assert all(s["rendered"] for s in sightings)
