"""Decide each request the browser makes with the rules Scrapy's middlewares apply to ours:
removal tombstones (tombstones.py), resolved addresses (network_guard.py), steward opt-outs
and each origin's robots.txt, its Content-Usage rules and ai.txt (site_policy.py). Every block
goes through report_block.

One difference, on the safe side: the browser cannot wait for a site's files to be fetched, so
a request to an origin whose files SitePolicyMiddleware has not read yet (a third-party CDN,
an API host) is refused as `origin_unknown`. The page's own origin is always known, because
the page itself was fetched through the middleware first.
"""

import asyncio
import socket
from urllib.parse import urlsplit

from crawler import USER_AGENT_TOKEN
from crawler.config import PolicyConfig
from crawler.shared_policy import SharedPolicy, origin_of, shared_policy
from crawler.signals import TOMBSTONE, report_block
from robots_policy import Decision, check_addresses

ORIGIN_UNKNOWN = "origin_unknown"


class BrowserRequestGuard:
    def __init__(self, crawler, *, policy: SharedPolicy, allow_loopback: bool):
        self.crawler = crawler
        self.policy = policy
        self.allow_loopback = allow_loopback

    @classmethod
    def from_crawler(cls, crawler) -> "BrowserRequestGuard":
        config = PolicyConfig.from_settings(crawler.settings)
        return cls(crawler, policy=shared_policy(crawler), allow_loopback=config.allow_loopback)

    async def check(self, url: str, *, page_url: str | None) -> Decision:
        decision = await self.decide(url)
        if not decision.allowed:
            report_block(self.crawler, url=url, reason=decision.reason, page_url=page_url)
        return decision

    async def decide(self, url: str) -> Decision:
        """The first block among: scheme, addresses, opt-outs, the origin's site files."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return Decision.block("bad_scheme")
        if self.policy.tombstones.blocks_url(url):
            return Decision.block(TOMBSTONE)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            infos = []
        # The browser resolves the name again when it connects: a name that changes its answer
        # between the two lookups (DNS rebinding) is a known gap of checking outside the browser.
        decision = check_addresses({info[4][0] for info in infos}, allow_loopback=self.allow_loopback)
        if not decision.allowed:
            return decision
        decision = self.policy.optouts.check_url(url)
        if not decision.allowed:
            return decision
        site = self.policy.sites.get(origin_of(url))
        if site is None:
            return Decision.block(ORIGIN_UNKNOWN)
        for decision in site.before_request(url, USER_AGENT_TOKEN):
            if not decision.allowed:
                return decision
        return Decision.allow("browser:ok")
