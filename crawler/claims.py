"""Which page and image URLs this crawl has already asked for: the spider's "requested once"
sets, kept where every process of the crawl sees them.

One process: sets in the spider's `state` dict, which Scrapy's SpiderState saves in JOBDIR on a
pause and loads on resume. Many workers on one frontier: Redis sets next to scrapy-redis's
queue (crawler/frontier/claims.py), answering the same way.
"""

import enum
from collections.abc import Callable


class Claim(enum.Enum):
    NEW = "new"  # first time: this caller requests it
    SEEN = "seen"  # someone already requested it
    OVER_LIMIT = "over_limit"  # new, but the kind's limit is reached: not requested


class LocalClaims:
    def __init__(self, state: Callable[[], dict]):
        # A callable: SpiderState replaces the spider's state dict when the spider opens.
        self._state = state

    def _set(self, kind: str) -> set[str]:
        return self._state().setdefault(f"{kind}_requested", set())

    def claim_all(self, kind: str, urls: list[str], *, limit: int | None = None) -> list[Claim]:
        """One claim per URL, in order (a URL given twice is SEEN the second time)."""
        claimed, results = self._set(kind), []
        for url in urls:
            if url in claimed:
                results.append(Claim.SEEN)
            elif limit is not None and len(claimed) >= limit:
                results.append(Claim.OVER_LIMIT)
            else:
                claimed.add(url)
                results.append(Claim.NEW)
        return results
