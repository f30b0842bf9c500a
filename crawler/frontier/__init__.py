"""One crawl, many workers: the shared frontier in Redis.

With GALLERY_FRONTIER set, scrapy-redis holds the request queue and the seen-set, and this
package adds what scrapy-redis leaves out:
- the spider's "requested once" claims (claims.py), so seeds are queued by whichever worker
  claims them first and an image is downloaded by one worker only;
- leases: a pop moves the request into this worker's in-flight hash, and it leaves that hash
  only once its outcome is durable (its links queued, its rows committed to the gallery: the
  pipeline acknowledges at each commit). A worker sends a heartbeat; the requests of one whose
  heartbeat stopped (killed, machine gone) are put back in the queue by the others;
- an end that waits for everyone: a worker whose queue runs dry keeps waiting while any other
  live worker holds requests or has taken one within GALLERY_FRONTIER_BUSY_TTL seconds (it may
  still find links), and stops once the queue is empty and nobody is at work;
- per-host politeness across the workers (DOWNLOAD_DELAY and Crawl-delay for all together);
- sightings of an image another worker downloaded, handed on through Redis and settled at
  close against the gallery;
- a lost Redis: the worker stops cleanly ("frontier_lost"), acknowledging nothing more, so
  what it had taken is taken back when the crawl is resumed.

Where: client.py (connecting, counting round trips), scripts.py (every Lua script),
store.py (the shared state, no Scrapy), claims.py (claims in Redis), scheduler.py (the
Scrapy side: addon, scheduler, this crawl's handle). Without GALLERY_FRONTIER nothing here is
switched on.

The Scrapy side is imported on first use only, so the Redis side loads (and is tested)
without Scrapy; "crawler.frontier.FrontierAddon" and "crawler.frontier.FrontierScheduler" stay
valid in settings.
"""

import importlib

from crawler.frontier.client import FrontierUnavailable, connect
from crawler.frontier.store import SharedFrontier, WorkLeft

_SCRAPY_SIDE = {"FrontierAddon", "FrontierScheduler", "LEASE", "LOST_REASON", "RECOVERED", "look_again", "shared_frontier"}

__all__ = ["FrontierUnavailable", "SharedFrontier", "WorkLeft", "connect", *sorted(_SCRAPY_SIDE)]


def __getattr__(name: str):
    if name in _SCRAPY_SIDE:
        return getattr(importlib.import_module("crawler.frontier.scheduler"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
