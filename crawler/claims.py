"""Which page and image URLs this crawl has already asked for: the spider's "requested once"
sets, kept where every process of the crawl sees them.

One process: sets in the spider's `state` dict, which Scrapy's SpiderState saves in JOBDIR on a
pause and loads on resume. Many workers on one frontier: Redis sets next to scrapy-redis's
queue, so a link found by two workers is requested by one, and an image seen on pages of two
workers is downloaded once and only recorded as one more sighting by the other.
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


# One round trip for all the URLs of a page: membership, limit and insert decided together
# for each, so two workers racing for the same URL (or the last page under the limit) cannot
# both win.
_CLAIM_SCRIPT = """
local limit = tonumber(ARGV[1])
local results = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then results[i - 1] = 0
  elseif limit >= 0 and redis.call('SCARD', KEYS[1]) >= limit then results[i - 1] = -1
  else redis.call('SADD', KEYS[1], ARGV[i]); results[i - 1] = 1 end
end
return results
"""
_RESULTS = {1: Claim.NEW, 0: Claim.SEEN, -1: Claim.OVER_LIMIT}


def call_directly(fn: Callable, *args, fallback=None, **kwargs):
    """A Redis call with nothing around it; SharedFrontier.call is the guarded one."""
    return fn(*args, **kwargs)


class RedisClaims:
    def __init__(self, server, *, prefix: str, call: Callable = call_directly):
        self.server = server
        self.prefix = prefix
        # SharedFrontier.call: once Redis is lost a claim answers SEEN (nothing new is requested;
        # the page asking is taken back on resume and asks again).
        self._call = call
        self._script = server.register_script(_CLAIM_SCRIPT)

    def claim_all(self, kind: str, urls: list[str], *, limit: int | None = None) -> list[Claim]:
        if not urls:
            return []
        key = f"{self.prefix}:claimed:{kind}"
        args = [-1 if limit is None else limit, *urls]
        results = self._call(self._script, keys=[key], args=args, fallback=[0] * len(urls))
        return [_RESULTS[int(r)] for r in results]
