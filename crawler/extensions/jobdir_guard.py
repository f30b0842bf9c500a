"""Make a JOBDIR safe to resume after a crash, not only after a pause.

Scrapy writes the disk queue's index (and the spider's state) only when the crawl closes; after
a SIGKILL or a power cut the queue files hold requests whose index is gone, and reading them
back would replay some requests and lose others. So a crawl marks its JOBDIR while it runs; a
run that finds the mark left behind moves the previous run's queue, seen-set and spider state
aside and starts again from the seeds. What the interrupted run already stored stays in the
gallery, and writing it again changes nothing (rows are keyed by image_id and sighting_id).
"""

import logging
import os
import time
from pathlib import Path

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.job import job_dir

logger = logging.getLogger(__name__)

MARK = "gallery-crawl.running"
# What Scrapy keeps in a JOBDIR: the scheduler's disk queue, its dupefilter, SpiderState's pickle.
SCRAPY_STATE = ("requests.queue", "requests.seen", "spider.state")


class JobdirGuard:
    def __init__(self, crawler, jobdir: Path):
        self.crawler = crawler
        self.mark = jobdir / MARK
        if self.mark.exists():
            self._set_aside(jobdir)
        self.mark.write_text(f"{os.getpid()}\n")
        crawler.signals.connect(self.engine_stopped, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler):
        jobdir = job_dir(crawler.settings)
        if not jobdir:
            raise NotConfigured
        return cls(crawler, Path(jobdir))

    def _set_aside(self, jobdir: Path) -> None:
        folder = jobdir / time.strftime("interrupted-%Y%m%dT%H%M%SZ", time.gmtime())
        moved = []
        for name in SCRAPY_STATE:
            if (jobdir / name).exists():
                folder.mkdir(exist_ok=True)
                (jobdir / name).rename(folder / name)
                moved.append(name)
        self.crawler.stats.set_value("jobdir/restarted_after_crash", True)
        logger.warning(
            "the previous crawl in %s did not stop cleanly; its queue cannot be trusted, so this run "
            "starts again from the seeds (the gallery keeps what it stored); moved %s to %s",
            jobdir,
            ", ".join(moved) or "nothing",
            folder.name,
        )

    def engine_stopped(self) -> None:
        # Only now: the scheduler has written its queue index and SpiderState its pickle.
        self.mark.unlink(missing_ok=True)
