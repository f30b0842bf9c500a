"""Nothing is lost on a shared frontier when a worker is killed or Redis goes away: real
`gallery crawl` workers, a real redis-server, the local fixture site."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from gallery.site import StaticSite
from indexer.store import Gallery
from tests.conftest import REPO, crawl, wait_until
from tests.job_files import frontier_job
from tests.many_site import assert_stored_exactly_once, build_many_site
from tests.servers import persistent_redis_server, redis_server

PAGES = 20
# Small so a dead worker's requests come back within seconds (heartbeat every second).
SHORT_TTLS = ["--set", "GALLERY_FRONTIER_LEASE_TTL=3", "--set", "GALLERY_FRONTIER_BUSY_TTL=2"]
IN_FLIGHT = "gallery:images:inflight:*"


@pytest.fixture
def many_site(tmp_path):
    with StaticSite(build_many_site(tmp_path / "site", pages=PAGES)) as site:
        yield site


def _job(tmp_path, site, frontier: str) -> str:
    return frontier_job(tmp_path, site.url, frontier, delay=0.15)


def _start(job: str, log: Path) -> subprocess.Popen:
    # Its own process group: a kill takes the analyzer processes with it, as a crash would.
    # The log to a file: a pipe nobody reads would stall a chatty worker.
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gallery", "crawl", "--job", job, "--json", *SHORT_TTLS],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            start_new_session=True,
        )



def _held_by(server: redis.Redis, pid: int) -> int:
    """Requests the worker with this process id holds (its worker name has the pid in it)."""
    return sum(server.hlen(key) for key in server.keys(f"gallery:images:inflight:*:{pid}:*"))


def _site_paths() -> set[str]:
    pages = {f"/page-{n}.html" for n in range(PAGES)}
    images = {f"/img/own-{n}.jpg" for n in range(PAGES)} | {"/img/shared.jpg"}
    return {"/", "/robots.txt", "/ai.txt", "/.well-known/tdmrep.json"} | pages | images


def _assert_rows_whole(gallery: Path) -> None:
    """Whatever an interrupted run wrote: no sighting without its image, no half-made image row."""
    store = Gallery(str(gallery), create=False)
    images = store.images.to_arrow().to_pylist()
    sightings = store.sightings.to_arrow().to_pylist()
    assert {s["image_id"] for s in sightings} <= {r["image_id"] for r in images}
    assert all(r["thumbnail"] and r["phash"] and r["pdq"] for r in images)
    assert len({s["sighting_id"] for s in sightings}) == len(sightings)


def _assert_frontier_drained(server: redis.Redis) -> None:
    assert server.keys(IN_FLIGHT) == []
    assert server.zcard("images:requests") == 0
    assert server.zcard("gallery:images:recovered") == 0


def _errors(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "] ERROR: " in line or "CRITICAL" in line or "Traceback" in line]


def test_blocked_failed_and_skipped_requests_are_acknowledged(fixture_site, tmp_path):
    """Robots-blocked pages, 404s, undecodable images: each outcome releases its request, so
    the worker ends and leaves nothing held."""
    with redis_server(tmp_path) as url:
        summary = crawl(fixture_site.url, tmp_path / "gallery", "--frontier", url, "--render", "never", *SHORT_TTLS)
        server = redis.Redis.from_url(url)
        _assert_frontier_drained(server)
        assert server.zcard("gallery:images:workers") == 0  # left cleanly
    assert summary["finish_reason"] == "finished"
    assert summary["blocked"].get("robots", 0) > 0 and summary["skipped"], summary


def test_a_killed_worker_loses_nothing(many_site, tmp_path):
    with redis_server(tmp_path) as url:
        server = redis.Redis.from_url(url)
        job = _job(tmp_path, many_site, url)
        workers = [_start(job, tmp_path / f"worker-{n}.log") for n in range(2)]
        try:
            # Midway: a worker holds requests it took, and the site is not crawled yet.
            wait_until(
                lambda: (len(many_site.requests) >= 10 and any(_held_by(server, w.pid) for w in workers))
                or any(w.poll() is not None for w in workers),
                timeout=90,
            )
            assert all(w.poll() is None for w in workers), "a worker ended before one could be killed"
            victim = next(w for w in workers if _held_by(server, w.pid))
            survivor = next(w for w in workers if w is not victim)
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=30)
            held = _held_by(server, victim.pid)
            assert held > 0
            assert len(set(many_site.requests)) < len(_site_paths())

            stdout, _ = survivor.communicate(timeout=120)
        finally:
            for process in workers:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
        survivor_log = tmp_path / f"worker-{workers.index(survivor)}.log"
        assert survivor.returncode == 0, survivor_log.read_text()[-3000:]
        assert _errors(survivor_log) == []
        assert json.loads(stdout)["finish_reason"] == "finished"
        _assert_frontier_drained(server)

    assert set(many_site.requests) == _site_paths()  # every page and image fetched
    assert_stored_exactly_once(tmp_path / "gallery", many_site.url, pages=PAGES)
    last = Gallery(str(tmp_path / "gallery"), create=False).last_crawl()
    assert last["frontier/recovered/requeued"] >= held


def test_redis_lost_midway_stops_cleanly_and_resumes(many_site, tmp_path):
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    with persistent_redis_server(redis_dir) as frontier:
        job = _job(tmp_path, many_site, frontier.url)
        log = tmp_path / "first.log"
        first = _start(job, log)
        try:
            wait_until(lambda: len(many_site.requests) >= 10 or first.poll() is not None, timeout=90)
            assert first.poll() is None, "the crawl ended before Redis could be stopped"
            frontier.stop()
            stopped_at = time.monotonic()
            first.wait(timeout=90)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
        assert time.monotonic() - stopped_at < 60
        assert first.returncode == 1
        lines = log.read_text().strip().splitlines()
        assert lines[-1].startswith(f"error: crawl failed: frontier lost: cannot reach {frontier.url} ("), lines[-1]
        assert lines[-1].endswith("; stopping, the frontier is kept for a later resume")
        assert [line for line in lines if "Traceback" in line] == []
        assert len(set(many_site.requests)) < len(_site_paths())
        _assert_rows_whole(tmp_path / "gallery")

        frontier.start()  # same port, same directory: the frontier as it was left
        server = redis.Redis.from_url(frontier.url)
        assert server.keys(IN_FLIGHT), "what the first run had taken is still held"
        second = subprocess.run(
            [sys.executable, "-m", "gallery", "crawl", "--job", job, "--json", *SHORT_TTLS],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert json.loads(second.stdout)["finish_reason"] == "finished"
        _assert_frontier_drained(server)

    assert set(many_site.requests) == _site_paths()
    assert_stored_exactly_once(tmp_path / "gallery", many_site.url, pages=PAGES)
