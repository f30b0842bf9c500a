"""The frontier's shared state in Redis: the queue with leases, the workers' heartbeats and busy
marks, the end that waits for everyone, per-host start times, and sightings handed on between
workers. Plain Redis calls and the scripts of scripts.py; nothing here knows Scrapy, so all of it
is tested against a Redis server alone (tests/crawler/test_frontier_store.py)."""

import itertools
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass

from crawler.config import FrontierConfig
from crawler.frontier import scripts
from crawler.frontier.claims import RedisClaims
from crawler.frontier.client import REDIS_DOWN, connect, redacted

logger = logging.getLogger(__name__)

KEY_PREFIX = "gallery"  # every key this crawl keeps, next to scrapy-redis's queue and seen-set


@dataclass(frozen=True)
class WorkLeft:
    """What keeps a worker whose own queue ran dry from ending."""

    queued: int  # requests waiting in the queue (recovered ones included)
    busy: int  # other workers that took a request within the busy TTL
    in_flight: int  # requests other live workers hold
    recovered: int  # requests just taken back from dead workers


class SharedFrontier:
    """This worker's handle on the frontier: one per crawl, built on first use."""

    def __init__(
        self, config: FrontierConfig, *, spider_name: str, queue_key: str, on_lost: Callable[[str], None] = lambda line: None
    ):
        self.config = config
        self.server = connect(config.url)
        self.prefix = f"{KEY_PREFIX}:{spider_name}"
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.claims = RedisClaims(self.server, prefix=self.prefix, call=self.call)
        self.queue_key = queue_key  # scrapy-redis's queue, which its scheduler opens too
        self.recovered_key = f"{self.prefix}:recovered"
        self.busy_key = f"{self.prefix}:busy"
        self.workers_key = f"{self.prefix}:workers"  # heartbeats: worker -> when it counts as dead
        self.in_flight_prefix = f"{self.prefix}:inflight:"
        self.in_flight_key = self.in_flight_prefix + self.worker
        self.parked_key = f"{self.prefix}:parked"
        self.host_turns_key = f"{self.prefix}:host_turns"  # host -> requests of it queued so far
        self._push = self.server.register_script(scripts.PUSH)
        self._pop = self.server.register_script(scripts.POP)
        self._until = self.server.register_script(scripts.UNTIL)
        self._sweep = self.server.register_script(scripts.SWEEP)
        self._leave = self.server.register_script(scripts.LEAVE)
        self._reserve_host = self.server.register_script(scripts.RESERVE_HOST)
        self._lease_ids = itertools.count(1)
        # The scheduler's Request objects popped and not yet acknowledged, by lease; the
        # pipeline acknowledges them.
        self.leases: dict[str, object] = {}
        # Set by IndexerPipeline, which acknowledges at each commit. Without it (a crawl whose
        # items go elsewhere) the scheduler acknowledges what the engine is done with.
        self.acks_after_commit = False
        # Set by IndexerPipeline: True while this worker already has as many images waiting for
        # analysis as it will get through soon. It then takes nothing more; the rest stays in the
        # shared queue for whichever worker is free (one added later too), and the workers end
        # together instead of one working off a hoard while the others wait.
        self.saturated: Callable[[], bool] = lambda: False
        self.lost: str | None = None  # the operator's line, once Redis is gone
        self._on_lost = on_lost

    # -- a lost server --------------------------------------------------------------

    def call(self, fn: Callable, *args, fallback=None, **kwargs):
        """fn(*args, **kwargs) against Redis. Once the server is lost: `fallback`, and the crawl
        stops; nothing is acknowledged from then on, so nothing taken can be lost."""
        if self.lost:
            return fallback
        try:
            return fn(*args, **kwargs)
        except REDIS_DOWN as exc:
            self._lose(exc)
            return fallback

    def _lose(self, exc: Exception) -> None:
        if self.lost:
            return
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        self.lost = (
            f"frontier lost: cannot reach {redacted(self.config.url)} ({detail}); "
            "stopping, the frontier is kept for a later resume"
        )
        logger.error(self.lost)
        self._on_lost(self.lost)

    # -- the queue, with leases -----------------------------------------------------

    def push(self, data: bytes, *, priority: int, host: str, fingerprint: str | None, seen_key: str) -> bool:
        """Queue a serialized request unless its fingerprint is in the seen-set; both in one
        step, so nothing is ever marked seen without being queued.

        Higher priority first; within a priority, hosts take turns (the n-th request of each
        host before the (n+1)-th of any). In plain queue order one host's requests would come
        out together, and while they wait out its politeness delay they would hold every
        download slot of the worker."""
        args = [-priority, data, fingerprint or "", host]
        return bool(self.call(self._push, keys=[self.queue_key, seen_key, self.host_turns_key], args=args, fallback=0))

    def pop(self) -> tuple[str, bytes, bool] | None:
        """(lease, serialized request, recovered), moved into this worker's in-flight hash; taken
        back ones first. Marks this worker busy in the same round trip."""
        lease = str(next(self._lease_ids))
        keys = [self.recovered_key, self.queue_key, self.in_flight_key, self.busy_key]
        popped = self.call(self._pop, keys=keys, args=[lease, self.worker, self.config.busy_ttl])
        if not popped:
            return None
        data, recovered = popped
        return lease, data, bool(int(recovered))

    def queued(self) -> int:
        pipe = self.server.pipeline()  # MULTI/EXEC: both counts at one instant, one round trip
        pipe.zcard(self.queue_key).zcard(self.recovered_key)
        return sum(self.call(pipe.execute, fallback=[0]))

    def settled_leases(self, in_progress: Collection) -> list[str]:
        """Leases on requests the engine is done with (not `in_progress`: their links are queued
        and their items have been through the pipeline). Forgotten here; the caller
        acknowledges them once those items are committed."""
        done = [lease for lease, request in self.leases.items() if request not in in_progress]
        for lease in done:
            del self.leases[lease]
        return done

    def ack(self, leases: list[str], parked: list[dict]) -> None:
        """Acknowledge leases whose outcome is now in the gallery, and hand on the sightings
        still waiting for their image, in one step (so neither is lost in between)."""
        if not leases and not parked:
            return
        pipe = self.server.pipeline()  # MULTI/EXEC: one round trip, all or nothing
        if parked:
            pipe.rpush(self.parked_key, *[json.dumps(p) for p in parked])
        if leases:
            pipe.hdel(self.in_flight_key, *leases)
        self.call(pipe.execute)

    # -- workers: heartbeat, busy mark, the end ---------------------------------------

    def beat(self) -> None:
        """This worker is alive for lease_ttl seconds more (sent every third of that)."""
        self.call(self._until, keys=[self.workers_key], args=[self.worker, self.config.lease_ttl])

    def mark_busy(self) -> None:
        self.call(self._until, keys=[self.busy_key], args=[self.worker, self.config.busy_ttl])

    def sweep(self, *, idle: bool) -> WorkLeft | None:
        """Put the requests of dead workers back in the queue (one atomic step: two survivors
        cannot both take them back) and count the work left; `idle` also clears this worker's
        busy mark. None once Redis is lost."""
        keys = [self.workers_key, self.busy_key, self.queue_key, self.recovered_key]
        counts = self.call(self._sweep, keys=keys, args=[self.worker, self.in_flight_prefix, int(idle)])
        return WorkLeft(*(int(n) for n in counts)) if counts else None

    def leave(self) -> None:
        """Not busy any more; off the heartbeat list too unless requests are still held (then
        they wait for the heartbeat to run out and are taken back)."""
        self.call(self._leave, keys=[self.busy_key, self.workers_key, self.in_flight_key], args=[self.worker])

    # -- politeness per host, across the workers ------------------------------------------

    def reserve_host(self, slot: str, *, delay: float) -> float:
        """Seconds this request waits so that the requests of `slot` (a host), from all workers
        together, start at least `delay` seconds apart. A lost Redis: no wait (the crawl is
        stopping; what is in flight finishes)."""
        key = f"{self.prefix}:host:{slot}"
        return float(self.call(self._reserve_host, keys=[key], args=[delay], fallback=0))

    # -- sightings waiting for another worker's image -----------------------------------

    def settle_parked(self, resolve: Callable[[list[str]], dict[str, str]], write: Callable[[list], None]) -> tuple[int, int] | None:
        """Sightings whose image this worker never downloaded, from every worker: resolve
        them (image URL -> image_id) against the gallery, `write` (commit) those found, then
        drop them from Redis; the rest wait for whoever closes later. Returns (settled, left),
        None once Redis is lost.

        Under a lock, and each worker calls this after committing its own rows and handing on
        its own parked sightings: so a worker that closes after another either finds its
        image in the gallery or finds its sighting here.
        """

        def settle() -> tuple[int, int]:
            with self.server.lock(f"{self.parked_key}:lock", timeout=120, blocking_timeout=120):
                raw = self.server.lrange(self.parked_key, 0, -1)
                waiting = [json.loads(r) for r in raw]
                ids = resolve(sorted({p["image_url"] for p in waiting})) if waiting else {}
                settled = [(ids[p["image_url"]], p) for p in waiting if p["image_url"] in ids]
                if settled:
                    write(settled)  # committed before it leaves Redis: a crash here only repeats it
                left = [r for r, p in zip(raw, waiting) if p["image_url"] not in ids]
                pipe = self.server.pipeline()
                pipe.ltrim(self.parked_key, len(raw), -1)  # what was read; pushes since then stay
                if left:
                    pipe.rpush(self.parked_key, *left)
                pipe.execute()
            return len(settled), len(left)

        return self.call(settle)


