"""Site files (robots.txt, ai.txt, tdmrep.json) cached in the frontier's Redis, so a worker
never fetches again what another worker fetched within the cache lifetime."""

import json
import time
from base64 import b64decode, b64encode
from collections.abc import Callable

import redis

from crawler.frontier.client import call_directly
from robots_policy.cache import DEFAULT_MAX_AGE, CachedFetch, PolicyFileCache


class RedisPolicyFileCache(PolicyFileCache):
    """Entries as JSON under "<prefix>:sitefile:<kind>:<origin>", expiring after `max_age`
    (Redis drops them itself; the base class's age check still guards against a clock skew
    between the worker that fetched and the one that reads); "...:fetching" next to an entry
    while one worker fetches it for all."""

    def __init__(
        self,
        server: redis.Redis,
        *,
        prefix: str,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
        call: Callable = call_directly,
    ):
        super().__init__(max_age=max_age, clock=clock)
        self.server = server
        self.prefix = prefix
        self._call = call  # SharedFrontier.call: a lost Redis is a cache miss (and stops the crawl)

    def _key(self, origin: str, kind: str) -> str:
        return f"{self.prefix}:sitefile:{kind}:{origin}"

    def _load(self, origin: str, kind: str) -> CachedFetch | None:
        raw = self._call(self.server.get, self._key(origin, kind))
        if raw is None:
            return None
        entry = json.loads(raw)
        return CachedFetch(status=entry["status"], body=b64decode(entry["body"]), fetched_at=entry["fetched_at"])

    def reserve(self, origin: str, kind: str, *, seconds: float) -> bool:
        # SET NX PX: one worker fetches; the reservation lapses by itself if that worker dies.
        # A lost Redis: fetch it yourself.
        key = self._key(origin, kind) + ":fetching"
        return bool(self._call(self.server.set, key, b"1", nx=True, px=max(1, int(seconds * 1000)), fallback=True))

    def _store(self, origin: str, kind: str, fetch: CachedFetch) -> None:
        value = json.dumps({"status": fetch.status, "body": b64encode(fetch.body).decode(), "fetched_at": fetch.fetched_at})
        key = self._key(origin, kind)
        pipe = self.server.pipeline()  # the entry in, the reservation out, in one round trip
        pipe.set(key, value, px=max(1, int(self.max_age * 1000)))
        pipe.delete(key + ":fetching")
        self._call(pipe.execute)

    def _drop(self, origin: str, kind: str) -> None:
        self._call(self.server.delete, self._key(origin, kind))
