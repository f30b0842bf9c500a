"""The browser misbehaving in ways a page cannot cause from inside: a browser that dies
mid-crawl (relaunched; its renders retried or counted as skips) and the connections it may
open on its own (resource hints, icons)."""

import json
import signal
import socket
import subprocess
import sys
import threading
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
             "--delay", "0", "--render", "always", "--render-budget", "10", "--json", "-v"],
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
    # closed target); one that runs out of retries, or of time on a loaded machine, is a counted
    # skip, not an error.
    skips = [line for line in stderr.splitlines() if "render of" in line and "skipped" in line]
    assert set(summary["render"]["skipped"]) <= {"browser_crashed", "timeout"}, skips
    lost = sum(summary["render"]["skipped"].values())
    # The render the kill interrupted was retried (with time for the new browser to start), or lost.
    assert stats.get("render/retried_in_new_browser", 0) + lost >= 1
    assert lost <= 4  # at most GALLERY_RENDER_MAX_PAGES were in flight
    assert summary["render"]["pages"] == PAGES + 1 - lost  # the index is rendered too
    assert summary["render"]["pages_open_at_close"] == 0
    sightings = Gallery(str(gallery), create=False).sightings.to_arrow().to_pylist()
    assert len({s["page_url"] for s in sightings}) >= PAGES - lost
    assert all(s["rendered"] for s in sightings)


def test_hints_and_icons_open_no_connection_the_guard_did_not_check(tmp_path):
    """Preconnect, DNS prefetch, prefetch, preload and icons name another origin; the browser
    may act on them outside the page's requests. Nothing may reach that origin: it is unknown
    to the crawl (its robots.txt was never read), so the guard refuses whatever is requested."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    other = f"http://127.0.0.1:{listener.getsockname()[1]}"
    accepted = []

    def accept():
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except (TimeoutError, OSError):
                continue

    stop = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    root = tmp_path / "site"
    root.mkdir()
    hints = "".join(
        f'<link rel="{rel}" href="{other}/{path}"{extra}>'
        for rel, path, extra in [
            ("preconnect", "", ""),
            ("dns-prefetch", "", ""),
            ("prefetch", "next.js", ""),
            ("preload", "app.js", ' as="script"'),
            ("icon", "favicon.ico", ""),
        ]
    )
    script = "<script>document.body.append('built by script')</script>"
    (root / "index.html").write_text(f"<!doctype html><html><head>{hints}</head><body>{script}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    try:
        with StaticSite(root) as site:
            result = subprocess.run(
                [sys.executable, "-m", "gallery", "crawl", site.url + "/", "--gallery", str(tmp_path / "g"),
                 "--allow-loopback", "--delay", "0", "--render", "always", "--render-budget", "8", "--json"],
                cwd=REPO, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            time.sleep(0.5)  # a late connection would still be counted
    finally:
        stop.set()
        thread.join()
        listener.close()
        for connection in accepted:
            connection.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["render"]["pages"] == 1
    assert accepted == []
