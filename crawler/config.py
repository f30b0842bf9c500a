"""Our settings, each read in exactly one place."""

import os
from dataclasses import dataclass
from pathlib import Path

from indexer.decode import DecodeLimits
from indexer.store import Gallery, default_page_cache
from robots_policy.optout import OptOutList


@dataclass(frozen=True)
class PolicyConfig:
    allow_loopback: bool  # POLICY_ALLOW_LOOPBACK: open 127.0.0.0/8 and ::1 (demo and tests only)
    optout_files: tuple[str, ...]  # POLICY_OPTOUT_FILES: steward opt-out lists, on top of the gallery's own
    site_file_timeout: float  # POLICY_SITE_FILE_TIMEOUT: seconds for robots.txt, ai.txt, tdmrep.json

    @classmethod
    def from_settings(cls, settings) -> "PolicyConfig":
        return cls(
            allow_loopback=settings.getbool("POLICY_ALLOW_LOOPBACK"),
            optout_files=tuple(settings.getlist("POLICY_OPTOUT_FILES")),
            site_file_timeout=settings.getfloat("POLICY_SITE_FILE_TIMEOUT"),
        )


def load_optouts(settings) -> OptOutList:
    """The opt-out entries kept in the gallery plus those of every --optout-list file."""
    optouts = OptOutList.parse("\n".join(Gallery(settings.get("GALLERY_URI")).optout_entries()), source="gallery")
    for path in PolicyConfig.from_settings(settings).optout_files:
        optouts.extend(OptOutList.parse(Path(path).read_text(), source=path))
    return optouts


@dataclass(frozen=True)
class IndexerConfig:
    gallery_uri: str  # GALLERY_URI: LanceDB directory or object-store URI
    workers: int  # INDEXER_WORKERS: processes decoding, hashing and detecting faces
    batch_size: int  # INDEXER_BATCH_SIZE: rows buffered before an append
    limits: DecodeLimits  # INDEXER_MAX_IMAGE_BYTES, INDEXER_MAX_PIXELS, INDEXER_MIN_WIDTH, INDEXER_MIN_HEIGHT

    @classmethod
    def from_settings(cls, settings) -> "IndexerConfig":
        return cls(
            gallery_uri=settings.get("GALLERY_URI"),
            workers=max(1, settings.getint("INDEXER_WORKERS")),
            batch_size=max(1, settings.getint("INDEXER_BATCH_SIZE")),
            limits=DecodeLimits(
                max_bytes=settings.getint("INDEXER_MAX_IMAGE_BYTES"),
                max_pixels=settings.getint("INDEXER_MAX_PIXELS"),
                min_width=max(0, settings.getint("INDEXER_MIN_WIDTH")),
                min_height=max(0, settings.getint("INDEXER_MIN_HEIGHT")),
            ),
        )


RENDER_MODES = ("never", "always", "auto")


# Debian's builds of Chromium. The headless shell (package chromium-headless-shell) has no
# browser UI layer behind its pages: about a quarter less CPU per rendered page here.
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"
CHROMIUM = "/usr/lib/chromium/chromium"


def default_browser() -> str:
    return HEADLESS_SHELL if os.access(HEADLESS_SHELL, os.X_OK) else CHROMIUM


@dataclass(frozen=True)
class RenderConfig:
    """How script-built pages are rendered (Playwright through scrapy-playwright)."""

    mode: str  # GALLERY_RENDER: never | always | auto (render only pages whose HTML suggests script-built images)
    browser: str  # GALLERY_RENDER_BROWSER: the Chromium binary (Debian's packages; nothing downloads a browser)
    max_pages: int  # GALLERY_RENDER_MAX_PAGES: pages rendered at once (throughput stopped improving past ~4)
    scroll_steps: int  # GALLERY_RENDER_SCROLL_STEPS: sweeps to the bottom of the page, for infinite scroll
    budget: float  # GALLERY_RENDER_BUDGET: seconds one page may take, from navigation to the last snapshot
    context_pages: int  # GALLERY_RENDER_CONTEXT_PAGES: pages per browser context before a fresh one is used
    probe_pages: int  # GALLERY_RENDER_PROBE_PAGES: auto: renders of a host that found nothing new before it is rendered no more

    @classmethod
    def from_settings(cls, settings) -> "RenderConfig":
        mode = settings.get("GALLERY_RENDER")
        if mode not in RENDER_MODES:
            raise ValueError(f"GALLERY_RENDER must be one of {', '.join(RENDER_MODES)}, not {mode!r}")
        return cls(
            mode=mode,
            browser=settings.get("GALLERY_RENDER_BROWSER") or default_browser(),
            max_pages=max(1, settings.getint("GALLERY_RENDER_MAX_PAGES")),
            scroll_steps=max(0, settings.getint("GALLERY_RENDER_SCROLL_STEPS")),
            budget=max(1.0, settings.getfloat("GALLERY_RENDER_BUDGET")),
            context_pages=max(1, settings.getint("GALLERY_RENDER_CONTEXT_PAGES")),
            probe_pages=max(1, settings.getint("GALLERY_RENDER_PROBE_PAGES")),
        )


@dataclass(frozen=True)
class FrontierConfig:
    """A crawl shared by many workers through Redis (scrapy-redis); None url: one process alone."""

    url: str | None  # GALLERY_FRONTIER: redis://HOST:PORT/DB holding the queue, the seen sets and the site-file cache
    busy_ttl: float  # GALLERY_FRONTIER_BUSY_TTL: seconds a worker counts as busy after taking a request (a killed one stops counting then)
    lease_ttl: float  # GALLERY_FRONTIER_LEASE_TTL: seconds without a heartbeat before a worker's unfinished requests are taken back by the others
    site_file_ttl: float  # GALLERY_FRONTIER_SITE_FILE_TTL: seconds a shared robots.txt/ai.txt/tdmrep.json entry lives (RFC 9309: at most 24 h)
    host_delay: float  # DOWNLOAD_DELAY, enforced per host across all workers together

    @classmethod
    def from_settings(cls, settings) -> "FrontierConfig":
        return cls(
            url=settings.get("GALLERY_FRONTIER") or None,
            busy_ttl=max(1.0, settings.getfloat("GALLERY_FRONTIER_BUSY_TTL")),
            lease_ttl=max(1.0, settings.getfloat("GALLERY_FRONTIER_LEASE_TTL")),
            site_file_ttl=min(24 * 3600.0, max(1.0, settings.getfloat("GALLERY_FRONTIER_SITE_FILE_TTL"))),
            host_delay=max(0.0, settings.getfloat("DOWNLOAD_DELAY")),
        )


@dataclass(frozen=True)
class PageCacheConfig:
    """Where fetched HTML pages are kept, so the next crawl of a site asks each "changed since?"."""

    # GALLERY_PAGE_CACHE: a directory, "off", or "auto": <gallery>/page-cache for a local gallery,
    # off for an object store. None here: no cache.
    directory: str | None

    @classmethod
    def from_settings(cls, settings) -> "PageCacheConfig":
        value = settings.get("GALLERY_PAGE_CACHE") or "auto"
        if value == "off":
            return cls(None)
        if value == "auto":
            default = default_page_cache(settings.get("GALLERY_URI"))
            return cls(str(default) if default else None)
        if "://" in value:
            raise ValueError(f"GALLERY_PAGE_CACHE must be a local directory, 'auto' or 'off', not {value!r}")
        return cls(str(Path(value).resolve()))


@dataclass(frozen=True)
class ProgressConfig:
    display: bool  # GALLERY_PROGRESS: the live display on stderr (gallery crawl on a terminal)
    heartbeat: float  # GALLERY_HEARTBEAT: seconds between one-line reports on stderr; 0: none

    @classmethod
    def from_settings(cls, settings) -> "ProgressConfig":
        return cls(display=settings.getbool("GALLERY_PROGRESS"), heartbeat=max(0.0, settings.getfloat("GALLERY_HEARTBEAT")))
