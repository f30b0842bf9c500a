"""Ask robots_policy before every request; fetch each origin's robots.txt once, first.

Replaces Scrapy's RobotsTxtMiddleware, which treats an unreachable robots.txt as allow-all.
"""

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import scrapy
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.defer import maybe_deferred_to_future

from crawler import USER_AGENT_TOKEN
from robots_policy import RobotsRules
from robots_policy.robots import MAX_ROBOTS_BYTES

logger = logging.getLogger(__name__)

ROBOTS_PRIORITY = 100  # ahead of everything waiting on it
ROBOTS_MAX_REDIRECTS = 5  # RFC 9309 §2.3.1.2


class RobotsPolicyMiddleware:
    def __init__(self, crawler):
        self.crawler = crawler
        self._rules: dict[str, asyncio.Task] = {}

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_request(self, request, spider=None):
        if request.meta.get("robots_fetch"):
            return None
        origin = _origin(request.url)
        if origin not in self._rules:
            self._rules[origin] = asyncio.ensure_future(self._fetch_rules(origin))
        rules = await asyncio.shield(self._rules[origin])
        decision = rules.decide(request.url, USER_AGENT_TOKEN)
        if not decision.allowed:
            self.crawler.stats.inc_value(f"policy/blocked/{decision.reason}")
            raise IgnoreRequest(f"blocked ({decision.reason}): {request.url}")
        request.meta.setdefault("policy_trail", []).append(decision.reason)
        return None

    async def _fetch_rules(self, origin: str) -> RobotsRules:
        request = scrapy.Request(
            origin + "/robots.txt",
            priority=ROBOTS_PRIORITY,
            dont_filter=True,
            meta={
                "robots_fetch": True,
                "handle_httpstatus_all": True,
                "redirect_ttl": ROBOTS_MAX_REDIRECTS,
                # Read more than we parse so a huge file is cut, not refused.
                "download_maxsize": 4 * MAX_ROBOTS_BYTES,
            },
        )
        try:
            response = await maybe_deferred_to_future(self.crawler.engine.download(request))
        except Exception as exc:  # any download failure means "unreachable" to RFC 9309
            logger.info("robots.txt unreachable for %s: %s", origin, exc)
            self.crawler.stats.inc_value("policy/robots_txt/unreachable")
            return RobotsRules.from_fetch(status=None, body=b"")
        self.crawler.stats.inc_value(f"policy/robots_txt/status/{response.status}")
        return RobotsRules.from_fetch(status=response.status, body=response.body)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.lower(), "", "", ""))
