"""The spider's "requested once" claims kept in Redis, so a link found by two workers is
requested by one, and an image seen on pages of two workers is downloaded once and only recorded
as one more sighting by the other. (One process alone keeps them in crawler/claims.py.)"""

from collections.abc import Callable

from crawler.claims import Claim
from crawler.frontier import scripts
from crawler.frontier.client import call_directly

_RESULTS = {1: Claim.NEW, 0: Claim.SEEN, -1: Claim.OVER_LIMIT}


class RedisClaims:
    def __init__(self, server, *, prefix: str, call: Callable = call_directly):
        self.server = server
        self.prefix = prefix
        # SharedFrontier.call: once Redis is lost a claim answers SEEN (nothing new is requested;
        # the page asking is taken back on resume and asks again).
        self._call = call
        self._script = server.register_script(scripts.CLAIM)

    def claim_all(self, kind: str, urls: list[str], *, limit: int | None = None) -> list[Claim]:
        if not urls:
            return []
        key = f"{self.prefix}:claimed:{kind}"
        args = [-1 if limit is None else limit, *urls]
        results = self._call(self._script, keys=[key], args=args, fallback=[0] * len(urls))
        return [_RESULTS[int(r)] for r in results]
