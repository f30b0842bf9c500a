"""What a running crawl shows: the snapshot's rates, ETA and blocks, drawn by rich at 80
columns, and the heartbeat's one line."""

import io

from rich.console import Console
from scrapy.utils.test import get_crawler

from crawler.extensions.progress import CrawlProgress, Heartbeat, render


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _crawler(**settings):
    crawler = get_crawler(settings_dict=settings)
    crawler.spider = type("Spider", (), {"max_pages": 100})()
    return crawler


def test_snapshot_rates_eta_and_blocks_by_reason():
    crawler, clock = _crawler(), Clock()
    progress = CrawlProgress(crawler, clock=clock)
    stats = crawler.stats
    progress.snapshot()  # the first sample: no rate yet
    clock.now += 10
    for key, value in {
        "crawl/pages": 20, "indexer/stored": 30, "indexer/duplicate/exact": 10,
        "policy/blocked/robots": 2, "policy/blocked/address_loopback": 5, "indexer/skipped/corrupt": 1,
    }.items():  # fmt: skip
        stats.set_value(key, value)
    snapshot = progress.snapshot()
    assert (snapshot.pages_per_s, snapshot.images_per_s) == (2.0, 4.0)
    assert snapshot.eta_s == 40.0  # 80 pages to go at 2 a second
    assert list(snapshot.blocked.items()) == [("address_loopback", 5), ("robots", 2)]  # most first
    assert snapshot.queue is None  # no engine running
    assert snapshot.line() == "crawl: 20 pages, 40 images, 7 blocked"

    console = Console(record=True, width=80)
    console.print(render(snapshot))
    text = console.export_text()
    for shown in ("20 of at most 100", "(2.0/s)", "(4.0/s), 30 new", "ETA", "40s", "address_loopback", "robots"):
        assert shown in text, (shown, text)
    assert max(len(line) for line in text.splitlines()) <= 80


def test_rates_follow_the_last_seconds_not_the_whole_crawl():
    crawler, clock = _crawler(), Clock()
    progress = CrawlProgress(crawler, clock=clock)
    for second in range(30):  # 10 pages a second, then none
        crawler.stats.set_value("crawl/pages", min(second, 15) * 10)
        progress.snapshot()
        clock.now += 1
    assert progress.snapshot().pages_per_s == 0.0
    assert progress.snapshot().eta_s is None  # no progress: no promise


def test_heartbeat_is_off_unless_asked_and_writes_one_line():
    from scrapy.exceptions import NotConfigured

    try:
        Heartbeat(_crawler())
        raise AssertionError("a heartbeat without GALLERY_HEARTBEAT")
    except NotConfigured:
        pass
    stream = io.StringIO()
    beat = Heartbeat(_crawler(GALLERY_HEARTBEAT=5), stream=stream)
    beat.tick()
    assert stream.getvalue() == "crawl: 0 pages, 0 images, 0 blocked\n"
