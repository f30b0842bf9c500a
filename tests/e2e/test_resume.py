"""Resuming a crawl from its JOBDIR: after a graceful pause, and after a SIGKILL."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from gallery.site import StaticSite
from indexer.store import Gallery
from tests.conftest import REPO, run_gallery, wait_until
from tests.job_files import write_job
from tests.many_site import assert_stored_exactly_once, build_many_site

PAGES = 100  # enough that a batch (64 rows) is written well before the crawl ends


@pytest.fixture
def many_site(tmp_path):
    with StaticSite(build_many_site(tmp_path / "site", pages=PAGES)) as site:
        yield site


def _start(job: str) -> subprocess.Popen:
    # Its own process group: a kill takes the analyzer processes with it, as a crash would.
    return subprocess.Popen(
        [sys.executable, "-m", "gallery", "crawl", "--job", job, "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )



def _image_rows(gallery) -> int:
    try:
        return Gallery(str(gallery), create=False).counts()["images"]
    except FileNotFoundError:
        return 0




def _job(tmp_path, site) -> str:
    return write_job(
        tmp_path / "job.toml",
        seeds=[site.url + "/"],
        allow_loopback=True,
        gallery="gallery",
        jobdir="state",
        render="never",
        politeness={"delay": 0.03, "concurrency_per_host": 1},
    )


def test_sigkill_midway_then_restart_stores_everything_exactly_once(many_site, tmp_path):
    job = _job(tmp_path, many_site)
    first = _start(job)
    try:
        # Midway: the first batch is in the gallery and the crawl is still going.
        wait_until(lambda: _image_rows(tmp_path / "gallery") > 0 or first.poll() is not None, timeout=60)
        assert first.poll() is None, "the crawl ended before it could be killed:\n" + first.stderr.read()[-3000:]
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait(timeout=30)
    fetched_before = len(many_site.requests)
    assert 0 < _image_rows(tmp_path / "gallery") < PAGES + 1

    result = run_gallery("crawl", "--job", job, "--json")
    assert "did not stop cleanly" in result.stderr
    assert json.loads(result.stdout)["finish_reason"] == "finished"
    assert len(many_site.requests) > fetched_before
    assert_stored_exactly_once(tmp_path / "gallery", many_site.url, pages=PAGES)
    assert list((tmp_path / "state").glob("interrupted-*/requests.queue"))


def test_pause_then_resume_fetches_each_url_once(many_site, tmp_path):
    job = _job(tmp_path, many_site)
    first = _start(job)
    wait_until(lambda: len(many_site.requests) > PAGES // 2 or first.poll() is not None, timeout=60)
    assert first.poll() is None, "the crawl ended before it could be paused"
    first.send_signal(signal.SIGINT)  # Scrapy's graceful stop: the queue and the spider state are saved
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr[-3000:]
    paused_at = len(many_site.requests)
    assert paused_at < 2 * PAGES

    result = run_gallery("crawl", "--job", job, "--json")
    assert "did not stop cleanly" not in result.stderr
    assert_stored_exactly_once(tmp_path / "gallery", many_site.url, pages=PAGES)
    counts = Counter(path for path in many_site.requests if not path.endswith((".txt", ".json")))
    assert {path: n for path, n in counts.items() if n > 1} == {}
    assert len(counts) == 2 * PAGES + 2  # the index, every page, every image
