"""The policy state that Scrapy's middlewares and the browser's request guard share, one per crawl,
read once when the crawl starts.

Browser sub-requests never pass through Scrapy's middlewares, so the guard in crawler/render/
reads what SitePolicyMiddleware has already learnt (opt-outs, each origin's parsed site files)
from here instead of fetching or parsing anything a second time.
"""

import weakref
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from crawler.config import IndexerConfig, load_optouts
from indexer.removal import TombstoneIndex, load_tombstones
from indexer.store import Gallery
from robots_policy.optout import OptOutList
from robots_policy.site import SitePolicy


@dataclass
class SharedPolicy:
    optouts: OptOutList
    # What removals took out of the gallery (URLs, prefixes, domains): never requested again.
    tombstones: TombstoneIndex = field(default_factory=TombstoneIndex)
    # origin ("scheme://host[:port]") -> its site files, once SitePolicyMiddleware has them.
    sites: dict[str, SitePolicy] = field(default_factory=dict)


# Keyed weakly by crawler, so a process that runs several crawls keeps no stale state.
_BY_CRAWLER: "weakref.WeakKeyDictionary[object, SharedPolicy]" = weakref.WeakKeyDictionary()


def shared_policy(crawler) -> SharedPolicy:
    """This crawl's shared policy state, built (opt-out lists read) on first use."""
    state = _BY_CRAWLER.get(crawler)
    if state is None:
        gallery = Gallery(IndexerConfig.from_settings(crawler.settings).gallery_uri)
        state = _BY_CRAWLER[crawler] = SharedPolicy(optouts=load_optouts(crawler.settings), tombstones=load_tombstones(gallery))
    return state


def known_site(crawler, origin: str) -> SitePolicy | None:
    """An origin's site files if SitePolicyMiddleware has read them; builds no state."""
    state = _BY_CRAWLER.get(crawler)
    return state.sites.get(origin) if state is not None else None


def origin_of(url: str) -> str:
    """The key `sites` is filed under: scheme and lower-cased host[:port]."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.lower(), "", "", ""))
