"""The browser's request guard and the context rotation, without a browser."""

import asyncio
import time

import pytest

from crawler.render.guard import ORIGIN_UNKNOWN, BrowserRequestGuard
from crawler.render.handler import ContextRotation
from crawler.shared_policy import SharedPolicy
from indexer.removal import TombstoneIndex
from robots_policy.cache import CachedFetch
from robots_policy.optout import OptOutList
from robots_policy.site import SitePolicy


class _Signals:
    def __init__(self):
        self.sent = []

    def send_catch_log(self, signal, **kwargs):
        self.sent.append(kwargs)


class _Crawler:
    def __init__(self):
        self.signals = _Signals()


def _site(robots: str) -> SitePolicy:
    def fetch(status, body=b""):
        return CachedFetch(status=status, body=body, fetched_at=time.time())

    return SitePolicy.from_fetches(robots=fetch(200, robots.encode()), ai_txt=fetch(404), tdmrep=fetch(404))


@pytest.fixture
def guard():
    tombstones = TombstoneIndex.from_rows([{"kind": "url_prefix", "value": "http://127.0.0.1:8000/removed/"}])
    policy = SharedPolicy(optouts=OptOutList.parse("http://127.0.0.1:8000/optout/"), tombstones=tombstones)
    policy.sites["http://127.0.0.1:8000"] = _site("User-agent: *\nDisallow: /private/\n")
    return BrowserRequestGuard(_Crawler(), policy=policy, allow_loopback=True)


# (url, allowed?, reason of a block)
CASES = [
    ("http://127.0.0.1:8000/js/app.js", True, None),
    ("http://127.0.0.1:8000/private/data.json", False, "robots"),
    ("http://127.0.0.1:8000/optout/x.js", False, "optout_url_prefix"),
    ("http://127.0.0.1:8000/removed/gallery.js", False, "tombstone"),
    ("http://127.0.0.1:9999/x.js", False, ORIGIN_UNKNOWN),  # its site files were never read
    ("http://169.254.169.254/latest/meta-data/", False, "address_link_local"),  # refused
    ("http://10.0.0.1/x.js", False, "address_private"),
    ("ftp://127.0.0.1:8000/x", False, "bad_scheme"),
]


@pytest.mark.parametrize(("url", "allowed", "reason"), CASES)
def test_guard_decides_like_the_middlewares(guard, url, allowed, reason):
    decision = asyncio.run(guard.check(url, page_url="http://127.0.0.1:8000/page.html"))
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason == reason
        # Every block is reported, with the page it came from (the exclusion log leaves out tombstones).
        assert guard.crawler.signals.sent == [{"url": url, "reason": reason, "page_url": "http://127.0.0.1:8000/page.html"}]
    else:
        assert guard.crawler.signals.sent == []


def test_loopback_needs_the_flag():
    policy = SharedPolicy(optouts=OptOutList())
    policy.sites["http://127.0.0.1:8000"] = _site("")
    guard = BrowserRequestGuard(_Crawler(), policy=policy, allow_loopback=False)
    assert asyncio.run(guard.decide("http://127.0.0.1:8000/")).reason == "address_loopback"


def test_contexts_rotate_and_close_when_drained():
    rotation = ContextRotation(pages_per_context=2)
    first = rotation.assign()
    assert rotation.assign() == first  # second page, same context; the next goes elsewhere
    third = rotation.assign()
    assert third != first
    assert rotation.release(first) is False  # one of its pages is still rendering
    assert rotation.release(first) is True  # drained and retired: close it
    assert rotation.release(third) is False  # the current context stays open


def test_a_retired_context_closes_with_its_last_page():
    rotation = ContextRotation(pages_per_context=50)
    name = rotation.assign()
    rotation.retire(name)  # e.g. a page in it would not close
    assert rotation.assign() != name
    assert rotation.release(name) is True
