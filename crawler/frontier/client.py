"""The frontier's Redis client: how it connects, what a lost server looks like, and the count of
round trips that the crawl's stats report."""

import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

# What a lost server raises (BusyLoadingError, a restarted one still loading, is one of them).
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


class FrontierUnavailable(Exception):
    """Redis could not be reached; the message is one line for the operator."""


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class RoundTrips:
    def __init__(self):
        self._lock = threading.Lock()  # clients are used from the reactor and worker threads
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


class CountingRedis(redis.Redis):
    """A client that counts its requests: each one a round trip to the server, a pipeline or a
    MULTI ... EXEC block one in all. Every client of a worker is one of these, so the crawl's
    stats say how chatty it is with the frontier."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.round_trips = RoundTrips()

    def execute_command(self, *args, **options):
        self.round_trips.add()
        return super().execute_command(*args, **options)

    def pipeline(self, transaction=True, shard_hint=None):
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        # Wrapped on the instance rather than subclassed: redis-py builds its Pipeline with a
        # constructor that is not public API.
        def counted(raise_on_error: bool = True):
            if len(pipe):  # the commands queued
                self.round_trips.add()
            return execute(raise_on_error)

        pipe.execute = counted
        return pipe


def connect(url: str) -> CountingRedis:
    """A client for the frontier, checked with a PING so a dead server fails now, in one line."""
    try:
        # Short timeouts and few retries: a blip of a second is ridden out, but a worker must
        # notice a lost (or hung) server within a minute, not hang on it for many.
        server = CountingRedis.from_url(
            url,
            socket_connect_timeout=5,
            socket_timeout=10,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 3),
            decode_responses=False,
        )
        server.ping()
    except REDIS_DOWN as exc:
        raise FrontierUnavailable(f"cannot reach the frontier at {redacted(url)}: {exc}") from None
    except ValueError as exc:  # a malformed URL
        raise FrontierUnavailable(f"bad frontier URL {redacted(url)}: {exc}") from None
    return server


def call_directly(fn: Callable, *args, fallback=None, **kwargs):
    """A Redis call with nothing around it; SharedFrontier.call is the guarded one."""
    return fn(*args, **kwargs)
