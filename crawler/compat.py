"""Every reach of crawler/ into a library's internals, where no public route serves.

Each seam names what it relies on and why. tests/test_compat.py exercises every one against the
installed versions; when an upgrade moves a seam, both that test and the crawl fail here, with
one line that says which library, which version and what moved, instead of deep inside it.
Nothing else in crawler/ may touch these names (tests/test_layering.py checks).
"""

from importlib.metadata import version

from indexer.compat import IncompatibleDependency


def _moved(library: str, what: str, exc: Exception) -> IncompatibleDependency:
    return IncompatibleDependency(
        f"{library} {version(library)}: {what} has changed ({type(exc).__name__}: {exc}); crawler/compat.py must follow it"
    )


# -- Scrapy's engine ----------------------------------------------------------------------
# The frontier acknowledges a request only once the engine is done with it (its links queued,
# its items through the pipeline), and a worker that waits for others must have the engine ask
# its scheduler again sooner than Scrapy's 5 s heartbeat. Scrapy offers neither publicly; both
# live on the engine's private slot (None before the spider opens and after it closes).


def requests_in_progress(engine) -> set:
    """The engine's own set of requests between the scheduler and the end of their callback's
    output; empty when no spider is open."""
    try:
        slot = engine._slot if engine is not None else None
        return slot.inprogress if slot is not None else set()
    except AttributeError as exc:
        raise _moved("scrapy", "ExecutionEngine._slot.inprogress", exc) from None


def schedule_next_look(engine, delay: float) -> None:
    """Have the engine ask its scheduler for requests again after `delay` seconds (an earlier
    look already scheduled wins: the slot's next call is a CallLaterOnce)."""
    try:
        slot = engine._slot if engine is not None else None
        if slot is not None:
            slot.nextcall.schedule(delay)
    except AttributeError as exc:
        raise _moved("scrapy", "ExecutionEngine._slot.nextcall.schedule", exc) from None


# -- Scrapy's downloader slots -------------------------------------------------------------
# A robots.txt Crawl-delay is learnt mid-crawl; Scrapy reads per-slot delays only from
# DOWNLOAD_SLOTS at start. The downloader's slot key, its per-slot settings (which a slot that
# is garbage-collected when idle is re-created from) and its live slots are not documented API.


def download_slot(crawler, request) -> str:
    """The key of the downloader slot `request` goes through (its host, unless meta says)."""
    try:
        return crawler.engine.downloader.get_slot_key(request)
    except AttributeError as exc:
        raise _moved("scrapy", "Downloader.get_slot_key", exc) from None


def slot_delay(crawler, key: str) -> float:
    """The delay set on slot `key` after the crawl started (by set_slot_delay); 0 if none."""
    try:
        return crawler.engine.downloader.per_slot_settings.get(key, {}).get("delay", 0.0)
    except AttributeError as exc:
        raise _moved("scrapy", "Downloader.per_slot_settings", exc) from None


def set_slot_delay(crawler, key: str, delay: float) -> None:
    """Space slot `key`'s downloads `delay` seconds apart: the live slot (never lowered) and
    the settings a re-created slot starts from."""
    try:
        downloader = crawler.engine.downloader
        downloader.per_slot_settings.setdefault(key, {})["delay"] = delay
        if key in downloader.slots:
            downloader.slots[key].delay = max(downloader.slots[key].delay, delay)
    except AttributeError as exc:
        raise _moved("scrapy", "Downloader.per_slot_settings / Downloader.slots[key].delay", exc) from None


# -- Scrapy's scheduler and downloader queues ----------------------------------------------
# The live display shows how many requests wait. ExecutionEngine.scheduler is public only since
# Scrapy 2.19; Scheduler.__len__ counts its queues; Downloader.active holds the requests the
# engine already handed to the downloader (most of a crawl's waiting, under a per-host delay).


def pending_requests(crawler) -> int | None:
    """Requests waiting in this crawl's scheduler (memory and disk queues) or in the downloader
    (its per-host queues, or in flight); None before the spider opens, after it closes, and
    for a shared frontier (its queue is in Redis, everyone's, and a look would cost a round trip)."""
    from scrapy.core.scheduler import Scheduler

    try:
        engine = crawler.engine
    except RuntimeError:  # Scrapy 2.19: the crawl has not started yet
        return None
    try:
        scheduler = engine.scheduler if engine is not None else None
        # Not isinstance: Scrapy's scheduler metaclass takes any class with its methods for one.
        if Scheduler not in type(scheduler).__mro__:
            return None
        return len(scheduler) + len(engine.downloader.active)
    except (AttributeError, TypeError) as exc:
        raise _moved("scrapy", "ExecutionEngine.scheduler, Scheduler.__len__ or Downloader.active", exc) from None
