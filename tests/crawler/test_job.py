"""Job files: parsing, the line a mistake is on, and command-line overrides."""

from pathlib import Path

import pytest

from crawler.job import CrawlJob, JobError, Politeness, load_job

GOOD = """\
seeds = ["https://example.org/"]
allowed_domains = ["cdn.example.org"]
max_pages = 50
render = "never"
optout_lists = ["lists/optout.txt"]
gallery = "out/gallery"
allow_loopback = false
jobdir = "state"
page_cache = "cache/pages"

[politeness]
delay = 1.5
concurrency_per_host = 2
"""


def test_good_job_and_paths_relative_to_the_file(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(GOOD)
    job = load_job(path)
    assert job.seeds == ("https://example.org/",)
    assert job.allowed_domains == ("cdn.example.org",)
    assert job.max_pages == 50 and job.render == "never"
    assert job.optout_lists == (str(tmp_path / "lists/optout.txt"),)
    assert job.gallery == str(tmp_path / "out/gallery")
    assert job.jobdir == str(tmp_path / "state")
    assert job.politeness == Politeness(delay=1.5, concurrency_per_host=2)
    assert job.settings() == {
        "GALLERY_URI": str(tmp_path / "out/gallery"),
        "GALLERY_RENDER": "never",
        "POLICY_ALLOW_LOOPBACK": False,
        "POLICY_OPTOUT_FILES": [str(tmp_path / "lists/optout.txt")],
        "DOWNLOAD_DELAY": 1.5,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
        "JOBDIR": str(tmp_path / "state"),
        "GALLERY_PAGE_CACHE": str(tmp_path / "cache/pages"),
    }
    assert job.spider_args() == {"seeds": "https://example.org/", "allowed_domains": "cdn.example.org", "max_pages": "50"}


def test_object_store_gallery_is_left_as_is(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(
        'seeds = ["https://example.org/"]\ngallery = "s3://bucket/g"\nfrontier = "redis://127.0.0.1:6379/0"\npage_cache = "off"\n'
    )
    job = load_job(path)
    assert job.gallery == "s3://bucket/g"
    assert job.settings()["GALLERY_FRONTIER"] == "redis://127.0.0.1:6379/0"
    assert job.settings()["GALLERY_PAGE_CACHE"] == "off"


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ('seeds = ["https://a/"\nmax_pages = 3\n', 2, "Unclosed array"),
        ('seeds = ["https://a/"]\nmax_pages = "ten"\n', 2, "max_pages must be an integer, not str"),
        ('seeds = ["https://a/"]\nmax_pages = true\n', 2, "max_pages must be an integer, not bool"),
        ('seeds = ["https://a/"]\n\nmaxpages = 3\n', 3, "unknown key 'maxpages'"),
        ('seeds = ["https://a/"]\nrender = "sometimes"\n', 2, "render must be one of never, always, auto"),
        ('seeds = ["ftp://a/"]\n', 1, "seed 'ftp://a/' is not an http(s) URL"),
        ('seeds = [1, 2]\n', 1, "seeds must be a list of strings"),
        ('seeds = ["https://a/"]\n[politeness]\ndelay = "slow"\n', 3, "politeness.delay must be a number"),
        ('seeds = ["https://a/"]\n[politeness]\ndelay = -1\n', 3, "politeness.delay must not be negative"),
        ('seeds = ["https://a/"]\n[politeness]\nburst = 3\n', 3, "unknown key politeness.burst"),
        ('seeds = ["https://a/"]\nfrontier = "http://x"\n', 2, "frontier must be a redis:// URL"),
        ('seeds = ["https://a/"]\nfrontier = "redis://x/0"\njobdir = "s"\n', 3, "not both"),
        ('seeds = ["https://a/"]\npage_cache = "s3://b/pages"\n', 2, "page_cache must be a local directory"),
    ],
)
def test_malformed_job_names_line_and_reason(tmp_path, text, line, reason):
    path = tmp_path / "job.toml"
    path.write_text(text)
    with pytest.raises(JobError) as raised:
        load_job(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message
    assert "\n" not in message


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(JobError, match="cannot read .*missing.toml"):
        load_job(tmp_path / "missing.toml")


def test_overrides_replace_only_what_was_given(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(GOOD)
    job = load_job(path).override(
        seeds=None, max_pages=5, allowed_domains=[], delay=None, concurrency_per_host=4, allow_loopback=None, render="auto"
    )
    assert job.seeds == ("https://example.org/",)
    assert job.allowed_domains == ("cdn.example.org",)
    assert job.max_pages == 5 and job.render == "auto"
    assert job.politeness == Politeness(delay=1.5, concurrency_per_host=4)
    assert job.allow_loopback is False


def test_seeds_may_come_from_the_command_line(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text("max_pages = 2\n")
    job = load_job(path)
    with pytest.raises(JobError, match="no seeds"):
        job.validate()
    assert job.override(seeds=["http://127.0.0.1:9/"]).validate().seeds == ("http://127.0.0.1:9/",)


def test_default_job_is_the_cli_defaults():
    assert CrawlJob().gallery == "./gallery" and CrawlJob().render == "auto"
