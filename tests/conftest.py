import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gallery.site import StaticSite
from tests.fixture_site import build_fixture_site
from tests.servers import s3_server

REPO = Path(__file__).resolve().parent.parent


def run_gallery(*args: str, check: bool = True, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `gallery` command line in a fresh process (a Twisted reactor starts once per
    process); `env`: variables to set for it on top of this process's."""
    result = subprocess.run(
        [sys.executable, "-m", "gallery", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **env} if env else None,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gallery {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def run_gallery_json(*args: str) -> dict:
    return json.loads(run_gallery(*args, "--json").stdout)


def crawl(site_url: str, gallery: Path, *extra: str, refused: bool = False) -> dict:
    """Crawl a local site through the real CLI; any ERROR in the crawl's log fails the test.
    `refused`: the site refuses the seed (robots.txt unreachable...): the crawl must say so and exit 1."""
    args = ("crawl", site_url + "/", "--gallery", str(gallery), "--allow-loopback", "--delay", "0", *extra, "--json")
    result = run_gallery(*args, check=not refused)
    if refused:
        last = (result.stderr.strip().splitlines() or [""])[-1]
        assert result.returncode == 1 and last.startswith("error: nothing crawled"), result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "] ERROR: " in line or "CRITICAL" in line]
    assert not errors, "\n".join(errors) + "\n" + result.stderr[-5000:]
    return json.loads(result.stdout)



def wait_until(condition, *, timeout: float, every: float = 0.05) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)

@pytest.fixture(scope="session")
def fixture_site(tmp_path_factory):
    with StaticSite(build_fixture_site(tmp_path_factory.mktemp("site"))) as site:
        yield site


@pytest.fixture(scope="session")
def crawled(fixture_site, tmp_path_factory):
    """The fixture site crawled once into a gallery shared by read-only tests: (summary, gallery path)."""
    gallery = tmp_path_factory.mktemp("crawled") / "gallery"
    return crawl(fixture_site.url, gallery), gallery


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server with a bucket `galleries`; the AWS variables point this process and
    the `gallery` subprocesses it starts at it."""
    import boto3

    with s3_server(tmp_path_factory.mktemp("moto")) as env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            boto3.client("s3").create_bucket(Bucket="galleries")
            yield env
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
