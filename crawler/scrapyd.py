"""Scheduling crawl jobs on Scrapyd through its HTTP API (schedule.json, listjobs.json).

Scrapyd runs the project as deployed with `scrapyd-deploy` (scrapy.cfg's [deploy] section); a
job file becomes the `images` spider's arguments plus `setting=NAME=VALUE` pairs.
"""

import configparser
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from crawler.job import CrawlJob

DEFAULT_URL = "http://127.0.0.1:6800"
PROJECT = "gallery-crawler"
SPIDER = "images"
TIMEOUT = 30


class ScrapydError(Exception):
    """Scrapyd could not be reached or refused the call; one line for the operator."""


def deploy_target(cfg: Path = Path("scrapy.cfg")) -> tuple[str, str]:
    """(url, project) from scrapy.cfg's [deploy] section, with defaults where it has none."""
    parser = configparser.ConfigParser()
    parser.read(cfg)
    return parser.get("deploy", "url", fallback=DEFAULT_URL), parser.get("deploy", "project", fallback=PROJECT)


def _setting_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)  # Scrapy's getlist splits on commas
    return str(value)


def schedule(job: CrawlJob, *, url: str, project: str) -> str:
    """Queue the job on Scrapyd; returns Scrapyd's job id."""
    fields = [("project", project), ("spider", SPIDER), *job.spider_args().items()]
    fields += [("setting", f"{name}={_setting_value(value)}") for name, value in job.settings().items()]
    answer = _call(f"{url.rstrip('/')}/schedule.json", data=urllib.parse.urlencode(fields).encode())
    return answer["jobid"]


def list_jobs(*, url: str, project: str) -> dict[str, list[dict]]:
    """Scrapyd's pending, running and finished jobs of the project."""
    answer = _call(f"{url.rstrip('/')}/listjobs.json?" + urllib.parse.urlencode({"project": project}))
    return {state: answer.get(state, []) for state in ("pending", "running", "finished")}


def _call(url: str, data: bytes | None = None) -> dict:
    try:
        with urllib.request.urlopen(url, data=data, timeout=TIMEOUT) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ScrapydError(f"Scrapyd at {url.split('?')[0]} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapydError(f"cannot reach Scrapyd at {url.split('?')[0]}: {reason}") from None
    except json.JSONDecodeError:
        raise ScrapydError(f"Scrapyd at {url.split('?')[0]} did not answer JSON") from None
    if answer.get("status") != "ok":
        raise ScrapydError(f"Scrapyd refused: {answer.get('message', answer)}".splitlines()[0])
    return answer
