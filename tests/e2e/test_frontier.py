"""Two `gallery crawl` workers on one Redis frontier (scrapy-redis): the work is split, nothing is
fetched twice, the site files are fetched once for both, per-host politeness holds for both."""

import json
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import redis

from gallery.site import StaticSite
from indexer.store import Gallery
from tests.conftest import REPO, run_gallery, wait_until
from tests.job_files import frontier_job
from tests.many_site import assert_stored_exactly_once, build_many_site, expected_counts
from tests.servers import free_port, redis_server

PAGES = 40


@pytest.fixture(scope="module")
def frontier_server(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def frontier(frontier_server):
    redis.Redis.from_url(frontier_server).flushdb()  # each test is a crawl of its own
    return frontier_server


class TimedRequests(list):
    """StaticSite's request log, with when each request arrived."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def append(self, path):
        self.times.append(time.monotonic())
        super().append(path)


class RequestsSeenByRedis:
    """The requests clients send, as Redis sees them (MONITOR) until stopped: a MULTI ... EXEC
    block is one, the commands scripts run inside Redis are none, and so are the handshakes
    (HELLO) of new connections, which the workers do not count."""

    def __init__(self, url: str):
        self.count = 0
        # No read timeout (redis-py's default is 5 s): on a loaded machine the workers may take
        # longer than that to send their first command.
        self._monitor = redis.Redis.from_url(url, socket_timeout=None).monitor()
        self._connection = self._monitor.__enter__()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        in_multi = False
        try:
            for event in self._connection.listen():
                command = event["command"].split(" ", 1)[0].strip('"').lower()
                if event["client_type"] == "lua" or command == "hello" or (in_multi and command != "exec"):
                    continue
                in_multi = command == "multi"
                self.count += command != "multi"
        except (redis.ConnectionError, ValueError):
            pass  # stopped

    def stop(self) -> int:
        time.sleep(0.2)  # the last events are on their way
        self._monitor.connection.disconnect()
        self._thread.join(timeout=5)
        return self.count


def _workers(job: str, count: int, *options: str) -> list[subprocess.CompletedProcess]:
    command = [sys.executable, "-m", "gallery", "crawl", "--job", job, "--json", *options]
    processes = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr[-3000:]
        errors = [line for line in stderr.splitlines() if "] ERROR: " in line or "CRITICAL" in line]
        assert not errors, stderr[-6000:]
        results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return results


def test_two_workers_split_the_crawl_and_fetch_each_url_once(frontier, tmp_path):
    with StaticSite(build_many_site(tmp_path / "site", pages=PAGES)) as site:
        # A delay long enough that the second worker is up before the first could finish alone.
        job = frontier_job(tmp_path, site.url, frontier, delay=0.1)
        seen_by_redis = RequestsSeenByRedis(frontier)
        summaries = [json.loads(r.stdout) for r in _workers(job, 2)]
        round_trips = seen_by_redis.stop()
    # Each worker counts its requests to Redis, as the server saw them, but for the PING each
    # sends from a client of its own to check the server before its crawl starts.
    assert sum(s["redis_round_trips"] for s in summaries) == round_trips - 2 > 0
    counts = Counter(site.requests)
    assert {path: n for path, n in counts.items() if n > 1} == {}
    # Site files too: the second worker read them from the shared cache.
    assert {"/robots.txt", "/ai.txt", "/.well-known/tdmrep.json"} <= set(counts)
    assert len(counts) == 2 * PAGES + 2 + 3
    # Both did part of the work.
    assert all(s["pages"] > 0 for s in summaries), summaries
    assert sum(s["pages"] for s in summaries) == PAGES + 1
    store = Gallery(str(tmp_path / "gallery"), create=False)
    images, sightings = store.images.to_arrow().to_pylist(), store.sightings.to_arrow().to_pylist()
    assert {"images": len(images), "sightings": len(sightings)} == expected_counts(PAGES)
    assert len({r["image_id"] for r in images}) == len(images)
    assert len({s["sighting_id"] for s in sightings}) == len(sightings)
    assert {s["image_id"] for s in sightings} == {r["image_id"] for r in images}


def test_a_worker_started_later_still_finds_work(frontier, tmp_path):
    """A worker takes no more requests than its analysis gets through soon; the rest waits in the
    shared queue. Before, the first worker took the whole site (its downloads are far faster
    than its analysis) and one started later found nothing left."""
    pages = 200
    with StaticSite(build_many_site(tmp_path / "site", pages=pages, size=(480, 360))) as site:
        job = frontier_job(tmp_path, site.url, frontier, delay=0, concurrency_per_host=8)  # downloads outrun the analysis
        command = [sys.executable, "-m", "gallery", "crawl", "--job", job, "--json", "--set", "INDEXER_WORKERS=1"]
        first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The first worker is fetching images: every page is queued by now, or soon.
        wait_until(lambda: sum(path.startswith("/img/") for path in site.requests) >= 5, timeout=90)
        (second,) = _workers(job, 1, "--set", "INDEXER_WORKERS=1")
        first_stdout, first_stderr = first.communicate(timeout=180)
        assert first.returncode == 0, first_stderr[-3000:]
        assert "] ERROR: " not in first_stderr, first_stderr[-6000:]
    summaries = [json.loads(first_stdout), json.loads(second.stdout)]
    assert summaries[1]["images_stored"] > 0, summaries
    assert sum(s["images_stored"] for s in summaries) == pages + 1
    assert_stored_exactly_once(tmp_path / "gallery", site.url, pages=pages)


def test_per_host_delay_holds_across_workers(frontier, tmp_path):
    delay, pages = 0.25, 8
    with StaticSite(build_many_site(tmp_path / "site", pages=pages)) as site:
        site.requests = TimedRequests()
        job = frontier_job(tmp_path, site.url, frontier, delay=delay, concurrency_per_host=4)
        _workers(job, 2)
    log = sorted(zip(site.requests.times, site.requests))
    times = [at for at, _ in log]
    assert len(times) == 2 * pages + 2 + 3, log
    # Every window of 4 gaps spans at least 4 delays, less what a loaded machine adds between a
    # claim and the request's arrival (0.87 of it seen on 2 busy cores). Two workers spacing
    # requests each on its own would span about half.
    spans = [times[i + 4] - times[i] for i in range(len(times) - 4)]
    assert min(spans) >= 4 * delay * 0.75, [(round(at - times[0], 3), path) for at, path in log]


def test_frontier_down_at_start_is_one_line(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_gallery(
        "crawl", "http://127.0.0.1:9/", "--allow-loopback", "--gallery", str(tmp_path / "g"), "--frontier", url, check=False
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: crawl failed: cannot reach the frontier at {url}")


def test_a_crawl_whose_items_go_elsewhere_ends_and_leaves_nothing_in_flight(frontier, tmp_path):
    """Without the indexer, which acknowledges requests at each commit, the scheduler
    acknowledges what the engine is done with; before, such a worker waited forever."""
    with StaticSite(build_many_site(tmp_path / "site", pages=10)) as site:
        job = frontier_job(tmp_path, site.url, frontier)
        (result,) = _workers(job, 1, "--set", "ITEM_PIPELINES={}")
    assert json.loads(result.stdout)["pages"] == 10 + 1
    server = redis.Redis.from_url(frontier)
    assert server.keys("gallery:images:inflight:*") == []
    assert Gallery(str(tmp_path / "gallery"), create=False).counts()["images"] == 0
