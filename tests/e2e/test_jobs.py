"""Crawl jobs from TOML files through `gallery crawl --job`."""

import json

from indexer.store import Gallery
from tests.conftest import run_gallery
from tests.job_files import write_job


def test_crawl_runs_a_job_file_and_flags_override_it(fixture_site, tmp_path):
    job = write_job(
        tmp_path / "job.toml",
        seeds=[fixture_site.url + "/"],
        allow_loopback=True,
        gallery="from-job",
        max_pages=2,
        render="never",
        politeness={"delay": 0, "concurrency_per_host": 2},
    )
    summary = json.loads(run_gallery("crawl", "--job", job, "--json").stdout)
    assert summary["pages"] == 2
    assert Gallery(str(tmp_path / "from-job"), create=False).counts()["images"] >= 1

    other = tmp_path / "from-flag"
    summary = json.loads(run_gallery("crawl", "--job", job, "--max-pages", "3", "--gallery", str(other), "--json").stdout)
    assert summary["pages"] == 3
    assert Gallery(str(other), create=False).counts()["images"] >= 1


def test_malformed_job_file_is_one_line_with_its_line(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('seeds = ["http://127.0.0.1:9/"]\nmax_pages = "many"\n')
    result = run_gallery("crawl", "--job", str(job), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {job}:2: max_pages must be an integer, not str"
