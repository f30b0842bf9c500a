"""A cache of raw site-file fetch outcomes (robots.txt, ai.txt, tdmrep.json) per origin, with
the RFC 9309 §2.4 age limit; behind a small interface so a shared (e.g. Redis) store can replace it."""

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

# RFC 9309 §2.4: crawlers SHOULD NOT use a cached robots.txt for more than 24 hours.
DEFAULT_MAX_AGE = 24 * 60 * 60.0


@dataclass(frozen=True)
class CachedFetch:
    """One fetch outcome as it came off the wire. Raw bytes rather than parsed rules, so that
    any store can hold it and a parser change applies to what is already cached."""

    status: int | None  # None: could not be fetched at all (network error, timeout)
    body: bytes
    fetched_at: float  # seconds since the epoch, on the clock of the cache it was put in


class PolicyFileCache(ABC):
    """Fetch outcomes keyed by (origin, kind): origin as "scheme://host[:port]", lower-cased
    by the caller; kind the file, e.g. "robots.txt", "ai.txt", "tdmrep.json".

    An entry older than `max_age` seconds is missing to `get`. Subclasses store and load
    entries; the age rule lives here so every store applies it the same way.
    """

    def __init__(self, *, max_age: float = DEFAULT_MAX_AGE, clock: Callable[[], float] = time.time):
        if max_age < 0:
            raise ValueError(f"max_age must not be negative, got {max_age}")
        self.max_age = max_age
        self.clock = clock  # injectable so tests (and workers sharing a store) agree on "now"

    def get(self, origin: str, kind: str) -> CachedFetch | None:
        entry = self._load(origin, kind)
        if entry is None:
            return None
        age = self.clock() - entry.fetched_at
        # An entry from the future (clocks of workers sharing a store disagree) has no
        # trustworthy age: fetch again rather than keep it for an unknown time.
        if not 0 <= age <= self.max_age:
            self._drop(origin, kind)
            return None
        return entry

    def put(self, origin: str, kind: str, fetch: CachedFetch) -> None:
        self._store(origin, kind, fetch)

    def reserve(self, origin: str, kind: str, *, seconds: float) -> bool:
        """Whether the caller, having missed, should fetch the file itself now. A store shared
        by several processes answers False while another one is fetching it (for at most
        `seconds`), so a site is not asked twice; the caller waits for that `put` instead."""
        return True

    @abstractmethod
    def _load(self, origin: str, kind: str) -> CachedFetch | None: ...

    @abstractmethod
    def _store(self, origin: str, kind: str, fetch: CachedFetch) -> None: ...

    def _drop(self, origin: str, kind: str) -> None:
        """Forget an entry `get` found too old. A store that expires entries itself (a Redis
        TTL) can leave this as it is; the age check above still holds."""


class MemoryPolicyFileCache(PolicyFileCache):
    """An in-process cache; one crawl process, nothing shared.

    `max_entries` bounds memory on a crawl of many hosts: past it, the entry written
    longest ago is dropped (a dropped entry only costs a refetch).
    """

    def __init__(
        self,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
        max_entries: int | None = None,
    ):
        super().__init__(max_age=max_age, clock=clock)
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], CachedFetch] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _load(self, origin: str, kind: str) -> CachedFetch | None:
        return self._entries.get((origin, kind))

    def _store(self, origin: str, kind: str, fetch: CachedFetch) -> None:
        key = (origin, kind)
        # Re-inserting moves the key to the end of the dict's order: "written longest ago" is first.
        self._entries.pop(key, None)
        self._entries[key] = fetch
        if self.max_entries is not None:
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]

    def _drop(self, origin: str, kind: str) -> None:
        self._entries.pop((origin, kind), None)
