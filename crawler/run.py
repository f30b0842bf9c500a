"""Run one crawl in this process and return its stats: the seam the CLI and the demo use."""

import shutil
from pathlib import Path

from crawler.job import CrawlJob
from indexer.store import Gallery
from indexer.store_errors import StoreError


class CrawlFailed(Exception):
    """The crawl could not run (e.g. the gallery could not be opened)."""


def run_crawl(job: CrawlJob, *, progress: bool = False, settings: dict | None = None) -> dict:
    """Run `job` (crawler/job.py: the one definition of what a job sets) and return its stats.
    `settings`: any other Scrapy setting on top, e.g. from `--set` or a benchmark."""
    # Here, not at the top: `gallery stats` reads summarize() and needs no Scrapy (start-up time).
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    from crawler.spiders.images import ImagesSpider

    overrides, settings = settings or {}, get_project_settings()
    settings.setmodule("crawler.settings", priority="project")
    settings.update({**job.settings(), "GALLERY_PROGRESS": progress, **overrides}, priority="cmdline")
    if progress and "LOG_LEVEL" not in overrides:
        settings.set("LOG_LEVEL", "WARNING", priority="cmdline")  # the live display shows the rest
    if settings.get("GALLERY_FRONTIER"):
        from crawler.frontier import FrontierUnavailable, connect

        try:  # before Scrapy starts, so a dead Redis is one line, not a traceback in the log
            connect(settings.get("GALLERY_FRONTIER")).close()
        except FrontierUnavailable as exc:
            raise CrawlFailed(str(exc)) from None
    uri = settings.get("GALLERY_URI")
    created = "://" not in uri and not Path(uri).exists()
    try:  # before Scrapy starts, so a missing bucket or refused credentials are one line
        Gallery(uri)
    except (StoreError, ValueError) as exc:
        raise CrawlFailed(str(exc)) from None
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(ImagesSpider)
    failures = []
    done = process.crawl(crawler, **job.spider_args())
    done.addErrback(failures.append)
    process.start()
    if failures:
        raise CrawlFailed(failures[0].getErrorMessage())
    if crawler.stats.get_value("frontier/lost"):
        # Stopped cleanly with the frontier kept; running the same crawl again resumes it.
        raise CrawlFailed(crawler.stats.get_value("frontier/lost"))
    stats = crawler.stats.get_stats()
    if created and nothing_crawled(stats) and _is_empty(uri):
        # Every seed refused or unreachable: an empty gallery left behind would only mislead.
        shutil.rmtree(uri, ignore_errors=True)
        stats["gallery/removed_empty"] = True
    return stats


def _is_empty(uri: str) -> bool:
    counts = Gallery(uri, create=False).counts()
    return counts["images"] == 0 and counts["sightings"] == 0


def summarize(stats: dict) -> dict:
    """The numbers an operator reads after a crawl, from Scrapy's stats."""

    def by_prefix(prefix: str) -> dict[str, int]:
        return {k.removeprefix(prefix): v for k, v in sorted(stats.items()) if k.startswith(prefix)}

    return {
        "pages": stats.get("crawl/pages", 0),
        "links_skipped": stats.get("crawl/links_skipped", 0),  # documents, archives, media: never requested
        "images_stored": stats.get("indexer/stored", 0),
        "duplicates_exact": stats.get("indexer/duplicate/exact", 0),
        "duplicates_near": stats.get("indexer/duplicate/near", 0),
        "sightings_written": stats.get("indexer/rows/sightings", 0),
        # Answered 304 to a conditional request: a kept page read again, a stored image seen again.
        "not_modified": by_prefix("http/not_modified/"),
        "blocked": by_prefix("policy/blocked/"),
        "crawl_delays": by_prefix("policy/crawl_delay/"),
        "skipped": by_prefix("indexer/skipped/"),
        # Stored, but decoded other than as published: an animation's first frame, an invalid EXIF orientation.
        "notes": by_prefix("indexer/notes/"),
        # What a page, stylesheet or sitemap held that was too big or malformed to read.
        "sources_skipped": {k: v for k, v in by_prefix("crawl/skipped/").items() if not k.startswith("render_")},
        "sources": {"stylesheets": stats.get("crawl/stylesheets", 0), "sitemaps": stats.get("crawl/sitemaps", 0)},
        "render": {
            "pages": stats.get("render/pages", 0),
            "skipped": by_prefix("crawl/skipped/render_"),
            "pages_open_at_close": stats.get("render/pages_open_at_close", 0),
            "counts": by_prefix("render/"),
        },
        "redis_round_trips": stats.get("frontier/redis_round_trips", 0),  # with --frontier: this worker's requests to Redis
        # Fetched as pages but not HTML (a PDF or an image linked as a page): dropped.
        "not_html": stats.get("crawl/skipped/not_html", 0),
        # Answered 404 and other HTTP errors (pages and images), by status.
        "http_errors": by_prefix("httperror/response_ignored_status_count/"),
        # Links found but not requested once --max-pages was reached, and how to go on.
        "pages_left": stats.get("crawl/pages_left", 0),
        "go_on": go_on_hint(stats),
        "seeds": {"count": stats.get("crawl/seeds", 0), "failed": stats.get("crawl/seed_failures", {})},
        "nothing_crawled": nothing_crawled(stats),  # every seed refused or unreachable: why, in one line
        "finish_reason": stats.get("finish_reason"),
        "error": stats.get("gallery/write_failed"),  # the store refused a write: the crawl stopped there
    }


def go_on_hint(stats: dict) -> str | None:
    """How to go on from a crawl that stopped at its page limit with links left."""
    left, limit = stats.get("crawl/pages_left", 0), stats.get("crawl/max_pages")
    if not left or not limit:
        return None
    said = f"{left} link(s) left unvisited at --max-pages {limit}"
    jobdir = stats.get("crawl/jobdir")
    if jobdir:
        return f"{said}: run again with --jobdir {jobdir} and a larger --max-pages to go on"
    if stats.get("crawl/frontier"):
        return said  # a shared frontier's limit counts all workers' pages together
    return f"{said}: crawl with --jobdir DIR to be able to go on from there with a larger --max-pages"


# A seed's block reason, told the way an operator acts on it.
_SEED_REASONS = {
    "address_loopback": "a loopback address, refused without --allow-loopback (for a server on this machine)",
    "unresolvable": "its host name does not resolve",
    "robots_unreachable": "its robots.txt could not be fetched, so nothing there may be",
    "robots_5xx": "its robots.txt answered a server error, so nothing there may be",
    "robots": "its robots.txt disallows it",
}


def nothing_crawled(stats: dict) -> str | None:
    """Why a crawl that stored nothing did so, in one line, when every seed was refused or
    unreachable; None otherwise (a crawl that reached its seeds but found no images is fine)."""
    failed = stats.get("crawl/seed_failures") or {}
    seeds = stats.get("crawl/seeds", 0)
    if not seeds or len(failed) < seeds or stats.get("crawl/pages", 0) or stats.get("indexer/rows/sightings", 0):
        return None
    reasons = []
    for url, why in list(failed.items())[:3]:
        reason, _, detail = why.partition(" (")
        told = _SEED_REASONS.get(reason)
        reasons.append((f"{url}: {told}" + (f" ({detail}" if detail else "")) if told else f"{url}: {why}")
    more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    every = "the seed was" if seeds == 1 else f"all {seeds} seeds were"
    return f"nothing crawled: {every} refused or unreachable: " + "; ".join(reasons) + more
