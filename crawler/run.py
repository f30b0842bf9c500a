"""Run one crawl in this process and return its stats: the seam the CLI and the demo use."""

from crawler.job import CrawlJob
from indexer.store import Gallery, StoreError


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
    if progress:
        settings.set("LOG_LEVEL", "WARNING", priority="cmdline")  # the live display shows the rest
    if settings.get("GALLERY_FRONTIER"):
        from crawler.frontier import FrontierUnavailable, connect

        try:  # before Scrapy starts, so a dead Redis is one line, not a traceback in the log
            connect(settings.get("GALLERY_FRONTIER")).close()
        except FrontierUnavailable as exc:
            raise CrawlFailed(str(exc)) from None
    try:  # before Scrapy starts, so a missing bucket or refused credentials are one line
        Gallery(settings.get("GALLERY_URI"))
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
    return crawler.stats.get_stats()


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
        "finish_reason": stats.get("finish_reason"),
        "error": stats.get("gallery/write_failed"),  # the store refused a write: the crawl stopped there
    }
