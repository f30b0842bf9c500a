"""A live terminal display of the crawl (rich), switched on by GALLERY_PROGRESS."""

from rich.live import Live
from rich.table import Table
from scrapy import signals
from scrapy.exceptions import NotConfigured


class ProgressDisplay:
    def __init__(self, crawler):
        if not crawler.settings.getbool("GALLERY_PROGRESS"):
            raise NotConfigured
        self.stats = crawler.stats
        self.live = Live(self._render(), refresh_per_second=4, transient=True)
        crawler.signals.connect(self.live.start, signal=signals.spider_opened)
        crawler.signals.connect(self.live.stop, signal=signals.spider_closed)
        for signal in (signals.response_received, signals.item_scraped, signals.request_dropped):
            crawler.signals.connect(self._update, signal=signal)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def _update(self, *args, **kwargs):
        self.live.update(self._render())

    def _render(self) -> Table:
        stats = self.stats.get_stats()
        table = Table(title="gallery crawl", show_header=False)
        rows = [
            ("pages", stats.get("crawl/pages", 0)),
            ("responses", stats.get("downloader/response_count", 0)),
            ("images stored", stats.get("indexer/stored", 0)),
            ("exact duplicates", stats.get("indexer/duplicate/exact", 0)),
            ("blocked", sum(v for k, v in stats.items() if k.startswith("policy/blocked/"))),
            ("skipped", sum(v for k, v in stats.items() if k.startswith("indexer/skipped/"))),
        ]
        for name, value in rows:
            table.add_row(name, str(value))
        return table
