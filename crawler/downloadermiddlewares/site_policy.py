"""Ask robots_policy before every request and after every response.

Before: the one ordered list of request checks (crawler/checks.py: scheme, removal tombstones,
steward opt-outs, resolved addresses, the origin's site files), the same list the browser's
request guard walks. Each origin's site files (robots.txt, its Content-Usage rules, ai.txt,
TDMRep) are fetched here, once per origin, ahead of anything else. After: the reservations a
response carries (X-Robots-Tag, tdm-reservation, Content-Usage, <meta>) and TDMRep. A blocked
image is dropped here; a blocked page is still parsed for links, but `page_reservation` in its
meta tells the spider not to request its images.

Replaces Scrapy's RobotsTxtMiddleware, which treats an unreachable robots.txt as allow-all.
"""

import asyncio
import logging
import time

import scrapy
from scrapy.http import HtmlResponse

from crawler import USER_AGENT_TOKEN
from crawler.checks import CheckContext, check_request
from crawler.compat import download_slot, set_slot_delay
from crawler.config import PolicyConfig
from crawler.frontier import shared_frontier
from crawler.policy_cache import RedisPolicyFileCache
from crawler.shared_policy import origin_of, shared_policy
from crawler.signals import Blocked, report_block
from robots_policy.cache import CachedFetch, MemoryPolicyFileCache, PolicyFileCache
from robots_policy.site import SITE_FILES, SitePolicy

logger = logging.getLogger(__name__)

SITE_FILE_PRIORITY = 100  # ahead of everything waiting on them
SITE_FILE_MAX_REDIRECTS = 5  # RFC 9309 §2.3.1.2
MAX_CRAWL_DELAY = 30.0  # seconds; larger values are a trap for a crawl, not politeness
SITE_FILE_WAIT = 0.2  # seconds between looks at the cache while another worker fetches a site file


class SitePolicyMiddleware:
    def __init__(self, crawler, config: PolicyConfig, cache: PolicyFileCache):
        self.crawler = crawler
        self.config = config
        self.cache = cache
        # Shared with the browser's request guard (crawler/render/), which obeys the same rules.
        self.shared = shared_policy(crawler)
        # Parsed policies per origin, each with the time it was built: rebuilt (through the
        # cache) once older than the cache's age limit, so a long crawl sees updated files.
        self._sites: dict[str, tuple[float, asyncio.Task]] = {}
        # origin -> why its robots.txt could not be read ("Connection refused", "HTTP 503"),
        # told with the block so a crawl that stored nothing can say why in one line.
        self._robots_errors: dict[str, str] = {}

    @classmethod
    def from_crawler(cls, crawler):
        frontier = shared_frontier(crawler)
        if frontier is not None:
            # Many workers: one fetch of each site file serves them all.
            cache = RedisPolicyFileCache(
                frontier.server, prefix=frontier.prefix, max_age=frontier.config.site_file_ttl, call=frontier.call
            )
        else:
            cache = MemoryPolicyFileCache(max_entries=30_000)
        return cls(crawler, PolicyConfig.from_settings(crawler.settings), cache)

    async def process_request(self, request, spider=None):
        site_file = bool(request.meta.get("site_file"))
        context = CheckContext(
            policy=self.shared,
            allow_loopback=self.config.allow_loopback,
            site_policy=lambda url: self._site_policy(request),
        )
        page_url = request.meta.get("image_context", {}).get("page_url")
        result = await check_request(self.crawler, request.url, context, page_url=page_url, site_file=site_file)
        if result.blocked is not None:
            reason = result.blocked.reason
            detail = self._robots_errors.get(origin_of(request.url)) if reason in ("robots_unreachable", "robots_5xx") else None
            raise Blocked(request.url, reason, detail)
        if not site_file:
            request.meta.setdefault("policy_trail", []).extend(result.passed)
        return None

    def process_response(self, request, response, spider=None):
        if request.meta.get("site_file"):
            return response
        site = self._sites[origin_of(request.url)][1].result()
        decisions = site.after_response(
            response.url, headers=_headers(response), meta=_meta_tags(response), token=USER_AGENT_TOKEN
        )
        trail = request.meta.setdefault("policy_trail", [])
        if "image_context" not in request.meta:
            # A page: keep it for its links; the spider leaves its images alone if reserved.
            blocked = [d for d in decisions if not d.allowed]
            if blocked:
                request.meta["page_reservation"] = blocked[0].reason
            trail.extend(d.reason for d in decisions if d.allowed)
            return response
        for decision in decisions:
            self._enforce(request, decision, trail)
        return response

    def _enforce(self, request, decision, trail: list[str]) -> None:
        if decision.allowed:
            trail.append(decision.reason)
            return
        page_url = request.meta.get("image_context", {}).get("page_url")
        report_block(self.crawler, url=request.url, reason=decision.reason, page_url=page_url)
        raise Blocked(request.url, decision.reason)

    async def _site_policy(self, request) -> SitePolicy:
        origin = origin_of(request.url)
        built_at, task = self._sites.get(origin, (0.0, None))
        if task is None or time.monotonic() - built_at > self.cache.max_age:
            task = asyncio.ensure_future(self._fetch_site_policy(origin, request))
            self._sites[origin] = (time.monotonic(), task)
        return await asyncio.shield(task)

    async def _fetch_site_policy(self, origin: str, request) -> SitePolicy:
        robots = await self._fetch(origin, "robots.txt")
        if robots.status is None or robots.status >= 500:
            # Everything is disallowed (RFC 9309 §2.3.1.3): asking for more files is pointless.
            ai_txt = tdmrep = CachedFetch(status=None, body=b"", fetched_at=robots.fetched_at)
        else:
            ai_txt, tdmrep = await asyncio.gather(self._fetch(origin, "ai.txt"), self._fetch(origin, "tdmrep.json"))
        site = SitePolicy.from_fetches(robots=robots, ai_txt=ai_txt, tdmrep=tdmrep)
        delay = site.robots.crawl_delay(USER_AGENT_TOKEN)
        if delay:
            self._apply_crawl_delay(request, float(delay))
        self.shared.sites[origin] = site
        return site

    async def _fetch(self, origin: str, kind: str) -> CachedFetch:
        cached = self.cache.get(origin, kind)
        if cached is not None:
            return cached
        # Another worker on the frontier may be fetching it this instant: wait for its answer
        # (the reservation lapses if that worker never gives one) rather than ask the site twice.
        reservation = self.config.site_file_timeout * (SITE_FILE_MAX_REDIRECTS + 1) + 5
        while not self.cache.reserve(origin, kind, seconds=reservation):
            await asyncio.sleep(SITE_FILE_WAIT)
            cached = self.cache.get(origin, kind)
            if cached is not None:
                self.crawler.stats.inc_value(f"policy/{kind}/waited_for_other_worker")
                return cached
        path, max_bytes = SITE_FILES[kind]
        request = scrapy.Request(
            origin + path,
            priority=SITE_FILE_PRIORITY,
            dont_filter=True,
            meta={
                "site_file": kind,
                # 4xx and 5xx are answers we decide on; 3xx must still reach RedirectMiddleware.
                "handle_httpstatus_list": list(range(400, 600)),
                # A 5xx is an answer here (disallow all), not an error; the cache lifetime is the retry.
                "dont_retry": True,
                "redirect_ttl": SITE_FILE_MAX_REDIRECTS,
                # Read a few times what we parse, so a huge file is cut, not refused.
                "download_maxsize": 4 * max_bytes,
                "download_timeout": self.config.site_file_timeout,
            },
        )
        try:
            response = await self.crawler.engine.download_async(request)
        except Exception as exc:  # every download failure is "unreachable" to RFC 9309
            logger.info("%s unreachable for %s: %s", kind, origin, exc)
            self.crawler.stats.inc_value(f"policy/{kind}/unreachable")
            if kind == "robots.txt":
                self._robots_errors[origin] = str(exc) or type(exc).__name__
            fetched = CachedFetch(status=None, body=b"", fetched_at=time.time())
        else:
            self.crawler.stats.inc_value(f"policy/{kind}/status/{response.status}")
            if kind == "robots.txt" and response.status >= 500:
                self._robots_errors[origin] = f"HTTP {response.status}"
            fetched = CachedFetch(status=response.status, body=response.body[:max_bytes], fetched_at=time.time())
        self.cache.put(origin, kind, fetched)
        return fetched

    def _apply_crawl_delay(self, request, delay: float) -> None:
        key = download_slot(self.crawler, request)
        delay = min(delay, MAX_CRAWL_DELAY)
        set_slot_delay(self.crawler, key, delay)
        self.crawler.stats.set_value(f"policy/crawl_delay/{key}", delay)


def _headers(response) -> dict[str, list[str]]:
    wanted = ("x-robots-tag", "tdm-reservation", "content-usage")
    return {
        name: [v.decode("latin-1") for v in response.headers.getlist(name)]
        for name in wanted
        if response.headers.getlist(name)
    }


def _meta_tags(response) -> dict[str, list[str]]:
    if not isinstance(response, HtmlResponse):
        return {}
    found: dict[str, list[str]] = {}
    for tag in response.xpath("//meta[@name and @content]"):
        found.setdefault(tag.attrib["name"].strip().lower(), []).append(tag.attrib["content"])
    return found
