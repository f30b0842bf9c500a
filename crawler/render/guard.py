"""Decide each request the browser makes by the crawl's one check chain (crawler/checks.py),
the list Scrapy's requests walk in SitePolicyMiddleware. Every block is reported there.

One difference, on the safe side: the browser cannot wait for a site's files to be fetched, so
a request to an origin whose files SitePolicyMiddleware has not read yet (a third-party CDN,
an API host) is refused as `origin_unknown`. The page's own origin is always known, because
the page itself was fetched through the middleware first.
"""

from crawler.checks import ORIGIN_UNKNOWN, CheckContext, check_request, run_checks
from crawler.config import PolicyConfig
from crawler.shared_policy import SharedPolicy, origin_of, shared_policy
from robots_policy import Decision
from robots_policy.site import SitePolicy

__all__ = ["ORIGIN_UNKNOWN", "BrowserRequestGuard"]


class BrowserRequestGuard:
    def __init__(self, crawler, *, policy: SharedPolicy, allow_loopback: bool):
        self.crawler = crawler
        self.policy = policy
        self.context = CheckContext(policy=policy, allow_loopback=allow_loopback, site_policy=self._known_site)

    @classmethod
    def from_crawler(cls, crawler) -> "BrowserRequestGuard":
        config = PolicyConfig.from_settings(crawler.settings)
        return cls(crawler, policy=shared_policy(crawler), allow_loopback=config.allow_loopback)

    async def check(self, url: str, *, page_url: str | None) -> Decision:
        result = await check_request(self.crawler, url, self.context, page_url=page_url)
        return result.blocked or Decision.allow("browser:ok")

    async def decide(self, url: str) -> Decision:
        """The first block in the chain, without reporting it."""
        return (await run_checks(url, self.context)).blocked or Decision.allow("browser:ok")

    async def _known_site(self, url: str) -> SitePolicy | None:
        return self.policy.sites.get(origin_of(url))
