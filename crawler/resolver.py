"""The resolver Scrapy connects with, refusing what the request checks' address check refuses.

The request checks (crawler/checks.py) look at a request's resolved addresses before it is
sent, but the connection resolves the name again: a name that answers a public address to the
first lookup and a private one to the second (DNS rebinding) would slip through. Checking again
here, on the address actually connected to, closes that gap. The checks stay the place where blocks are
counted and logged; a refusal here is a failed download (DNSLookupError) and means a name
changed its answer between the two lookups.
"""

import logging

from scrapy.resolver import CachingThreadedResolver
from twisted.internet.error import DNSLookupError

from crawler.config import PolicyConfig
from robots_policy import check_addresses

logger = logging.getLogger(__name__)


class GuardedResolver(CachingThreadedResolver):
    allow_loopback = False

    @classmethod
    def from_crawler(cls, crawler, reactor):
        resolver = super().from_crawler(crawler, reactor)
        resolver.allow_loopback = PolicyConfig.from_settings(crawler.settings).allow_loopback
        return resolver

    def getHostByName(self, name, timeout=()):
        return super().getHostByName(name, timeout).addCallback(self.checked, name)

    def checked(self, address: str, name: str) -> str:
        decision = check_addresses({address}, allow_loopback=self.allow_loopback)
        if not decision.allowed:
            # Twisted reports any resolver failure as "no results": say here what happened.
            message = f"{name} now resolves to a refused address ({decision.reason})"
            logger.warning("not connecting: %s", message)
            raise DNSLookupError(message)
        return address
