"""A real Scrapyd on 127.0.0.1: deploy the project with scrapyd-deploy, schedule the fixture
crawl with `gallery schedule --job`, follow it with `gallery jobs`, and see rows land."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.store import Gallery
from tests.conftest import REPO, run_gallery, run_gallery_json
from tests.job_files import write_job
from tests.servers import free_port, running

PACKAGES = ("crawler", "indexer", "robots_policy", "gallery")


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory):
    root = tmp_path_factory.mktemp("scrapyd")
    port = free_port()
    (root / "scrapyd.conf").write_text(
        "[scrapyd]\nbind_address = 127.0.0.1\n"
        f"http_port = {port}\npoll_interval = 0.5\nmax_proc = 2\n"
        f"eggs_dir = {root / 'eggs'}\nlogs_dir = {root / 'logs'}\ndbs_dir = {root / 'dbs'}\nitems_dir =\n"
    )
    scrapyd_bin = str(Path(sys.executable).with_name("scrapyd"))
    with running([scrapyd_bin], port=port, log=root / "scrapyd.log", cwd=root):
        yield f"http://127.0.0.1:{port}", root


def _deploy(url: str, workdir: Path) -> None:
    """scrapyd-deploy from a copy of the project, so the setup.py it writes stays out of the repo."""
    project = workdir / "project"
    for package in PACKAGES:
        shutil.copytree(REPO / package, project / package, ignore=shutil.ignore_patterns("__pycache__"))
    (project / "scrapy.cfg").write_text(f"[settings]\ndefault = crawler.settings\n\n[deploy]\nurl = {url}/\nproject = gallery-crawler\n")
    deploy = str(Path(sys.executable).with_name("scrapyd-deploy"))
    result = subprocess.run([deploy], cwd=project, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and '"status": "ok"' in result.stdout, result.stdout + result.stderr


def test_schedule_a_job_on_scrapyd_and_rows_land(scrapyd, fixture_site, tmp_path):
    url, root = scrapyd
    _deploy(url, tmp_path)
    job = write_job(
        tmp_path / "job.toml",
        seeds=[fixture_site.url + "/"],
        allow_loopback=True,
        gallery="gallery",
        render="never",
        politeness={"delay": 0},
    )
    job_id = run_gallery_json("schedule", "--job", job, "--scrapyd", url)["jobid"]
    deadline = time.monotonic() + 120
    while True:
        listed = run_gallery_json("jobs", "--scrapyd", url)
        if any(entry["id"] == job_id for entry in listed["finished"]):
            break
        assert time.monotonic() < deadline, listed
        time.sleep(1)
    log = next((root / "logs").rglob(f"{job_id}.log")).read_text()
    assert "ERROR" not in log, log[-3000:]
    counts = Gallery(str(tmp_path / "gallery"), create=False).counts()
    assert counts["images"] > 5 and counts["sightings"] >= counts["images"]


def test_scrapyd_down_is_one_line():
    result = run_gallery("jobs", "--scrapyd", f"http://127.0.0.1:{free_port()}", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach Scrapyd at") and result.stderr.count("\n") == 1
