"""What a running crawl shows of itself, from one snapshot of its stats: a live display (rich)
for a terminal, switched on by GALLERY_PROGRESS, or a one-line heartbeat on stderr every
GALLERY_HEARTBEAT seconds (for `--json` and logs)."""

import sys
import time
from collections import deque
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table
from scrapy import signals
from scrapy.exceptions import NotConfigured
from twisted.internet import task

from crawler.compat import pending_requests
from crawler.config import ProgressConfig

RATE_WINDOW = 10.0  # seconds: rates are over the last few seconds, not the whole crawl
DISPLAY_REFRESH = 0.5  # seconds between redraws of the live display
TOP_BLOCK_REASONS = 6


@dataclass(frozen=True)
class Snapshot:
    pages: int
    images: int  # taken in: new, exact duplicates and not-modified alike
    images_stored: int
    blocked: dict[str, int]  # reason -> count, most first
    skipped: int
    queue: int | None  # requests waiting; None where unknown (a shared frontier)
    pages_per_s: float
    images_per_s: float
    eta_s: float | None  # until --max-pages, at the current rate
    max_pages: int | None

    def line(self) -> str:
        """The heartbeat: counts only, one line."""
        queue = f", queue {self.queue}" if self.queue is not None else ""
        return f"crawl: {self.pages} pages, {self.images} images, {sum(self.blocked.values())} blocked{queue}"


class CrawlProgress:
    """Snapshots of one crawl's progress; rates over the last RATE_WINDOW seconds."""

    def __init__(self, crawler, *, clock=time.monotonic):
        self.crawler = crawler
        self.clock = clock
        self._samples: deque[tuple[float, int, int]] = deque()

    def snapshot(self) -> Snapshot:
        stats = self.crawler.stats.get_stats()
        pages = stats.get("crawl/pages", 0)
        stored = stats.get("indexer/stored", 0)
        images = stored + stats.get("indexer/duplicate/exact", 0) + stats.get("indexer/not_modified", 0)
        now = self.clock()
        self._samples.append((now, pages, images))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()
        then, pages_then, images_then = self._samples[0]
        elapsed = now - then
        pages_per_s = (pages - pages_then) / elapsed if elapsed > 0 else 0.0
        images_per_s = (images - images_then) / elapsed if elapsed > 0 else 0.0
        max_pages = self._max_pages()
        eta = None
        if max_pages and pages < max_pages and pages_per_s > 0:  # at the limit, what is left is images
            eta = max(max_pages - pages, 0) / pages_per_s
        blocked = {k.removeprefix("policy/blocked/"): v for k, v in stats.items() if k.startswith("policy/blocked/")}
        return Snapshot(
            pages=pages,
            images=images,
            images_stored=stored,
            blocked=dict(sorted(blocked.items(), key=lambda kv: (-kv[1], kv[0]))),
            skipped=sum(v for k, v in stats.items() if k.startswith("indexer/skipped/")),
            queue=pending_requests(self.crawler),
            pages_per_s=pages_per_s,
            images_per_s=images_per_s,
            eta_s=eta,
            max_pages=max_pages,
        )

    def _max_pages(self) -> int | None:
        """The images spider's --max-pages; None before the crawl starts (Scrapy 2.19 raises)."""
        try:
            return getattr(self.crawler.spider, "max_pages", None)
        except RuntimeError:
            return None


def render(snapshot: Snapshot) -> Table:
    """The live display's table."""
    table = Table(title="gallery crawl", show_header=False)
    pages = f"{snapshot.pages}" + (f" of at most {snapshot.max_pages}" if snapshot.max_pages else "")
    table.add_row("pages", f"{pages}  ({snapshot.pages_per_s:.1f}/s)")
    table.add_row("images", f"{snapshot.images}  ({snapshot.images_per_s:.1f}/s), {snapshot.images_stored} new")
    table.add_row("queue", "?" if snapshot.queue is None else str(snapshot.queue))
    if snapshot.eta_s is not None:
        table.add_row("ETA", _duration(snapshot.eta_s))
    table.add_row("skipped", str(snapshot.skipped))
    table.add_row("blocked", str(sum(snapshot.blocked.values())))
    for reason, count in list(snapshot.blocked.items())[:TOP_BLOCK_REASONS]:
        table.add_row(f"  {reason}", str(count))
    return table


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class _WhileTheSpiderRuns:
    """Calls `tick` every `interval` seconds, on the reactor thread (where the stats change),
    from the spider's opening to its closing."""

    def __init__(self, crawler, interval: float):
        self.interval = interval
        self.progress = CrawlProgress(crawler)
        self._ticks = task.LoopingCall(self.tick)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def tick(self) -> None:
        raise NotImplementedError

    def spider_opened(self, spider=None) -> None:
        self._ticks.start(self.interval, now=False)

    def spider_closed(self, spider=None) -> None:
        if self._ticks.running:
            self._ticks.stop()


class ProgressDisplay(_WhileTheSpiderRuns):
    """The live display, redrawn on stderr while the spider runs (stdout keeps the summary)."""

    def __init__(self, crawler, *, console: Console | None = None):
        if not ProgressConfig.from_settings(crawler.settings).display:
            raise NotConfigured
        super().__init__(crawler, DISPLAY_REFRESH)
        # Redrawn by tick only: rich's own refresh thread would read the stats mid-update.
        self.live = Live(render(self.progress.snapshot()), console=console or Console(stderr=True), transient=True, auto_refresh=False)

    def tick(self) -> None:
        self.live.update(render(self.progress.snapshot()), refresh=True)

    def spider_opened(self, spider=None) -> None:
        self.live.start()
        super().spider_opened(spider)

    def spider_closed(self, spider=None) -> None:
        super().spider_closed(spider)
        self.live.stop()


class Heartbeat(_WhileTheSpiderRuns):
    """One line on stderr every GALLERY_HEARTBEAT seconds while the spider runs."""

    def __init__(self, crawler, *, stream=None):
        interval = ProgressConfig.from_settings(crawler.settings).heartbeat
        if not interval:
            raise NotConfigured
        super().__init__(crawler, interval)
        self.stream = stream

    def tick(self) -> None:
        stream = self.stream or sys.stderr
        stream.write(self.progress.snapshot().line() + "\n")
        stream.flush()
