"""Refuse requests to private, loopback, link-local, multicast and reserved addresses.

Runs for every request Scrapy sends, redirects included (a redirect is a new request).
"""

import asyncio
import socket
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest

from crawler.config import PolicyConfig
from crawler.signals import report_block
from robots_policy import check_addresses


class NetworkGuardMiddleware:
    def __init__(self, crawler, config: PolicyConfig):
        self.crawler = crawler
        self.config = config

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, PolicyConfig.from_settings(crawler.settings))

    async def process_request(self, request, spider=None):
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self._block(request, "bad_scheme")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            infos = []
        decision = check_addresses({info[4][0] for info in infos}, allow_loopback=self.config.allow_loopback)
        if not decision.allowed:
            self._block(request, decision.reason)
        request.meta.setdefault("policy_trail", []).append(decision.reason)
        return None

    def _block(self, request, reason: str):
        page_url = request.meta.get("image_context", {}).get("page_url")
        report_block(self.crawler, url=request.url, reason=reason, page_url=page_url)
        raise IgnoreRequest(f"blocked ({reason}): {request.url}")
