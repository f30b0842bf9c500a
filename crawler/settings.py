"""Scrapy settings for the gallery crawler. Our own settings are read once, in config.py."""

from crawler import USER_AGENT
from indexer.decode import DecodeLimits

BOT_NAME = "gallery-crawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
USER_AGENT = USER_AGENT

TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# No door into the crawl process: the telnet console and Scrapy's remote control (an HTTP
# port that runs Python code sent to it) are both off; a crawler reads untrusted pages.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False

# robots.txt is decided by robots_policy through our middleware; Scrapy's own treats an
# unreachable robots.txt as "allow all", which RFC 9309 forbids.
ROBOTSTXT_OBEY = False
# The address connected to is checked too, not only the one the network guard looked up.
TWISTED_DNS_RESOLVER = "crawler.resolver.GuardedResolver"
DOWNLOADER_MIDDLEWARES = {
    # Every request check, in the one order crawler/checks.py declares (the browser's guard
    # walks the same list), then the site's reservations on the response.
    "crawler.downloadermiddlewares.site_policy.SitePolicyMiddleware": 100,
    # After the site policy: a request it blocks takes no slot; its Crawl-delay is known by then.
    "crawler.downloadermiddlewares.host_rate.SharedHostRateMiddleware": 110,
    # Conditional requests, last before the download: only what the policy allowed gets here.
    # Scrapy's own cache is replaced by ours (switched on by PageCacheAddon).
    "scrapy.downloadermiddlewares.httpcache.HttpCacheMiddleware": None,
    "crawler.downloadermiddlewares.page_cache.PageCacheMiddleware": 900,
    # After the page cache: it counts the 304 a page got before the cache turns it into the kept page.
    "crawler.downloadermiddlewares.conditional.ConditionalImageMiddleware": 950,
}
ITEM_PIPELINES = {"crawler.pipelines.indexer.IndexerPipeline": 300}
EXTENSIONS = {
    "crawler.extensions.exclusion_log.ExclusionLog": 400,
    "crawler.extensions.tombstones.TombstoneRefresh": 410,
    "crawler.extensions.progress.ProgressDisplay": 500,
    "crawler.extensions.progress.Heartbeat": 510,
    "crawler.extensions.jobdir_guard.JobdirGuard": 0,
}

# Politeness and bounds. Crawler traps are cut by depth and URL length.
CONCURRENT_REQUESTS = 16
# Outputs of one callback handled at once. Scrapy starts this many tasks for every response;
# ours yield a few items or a page's links, and 100 (the default) cost more than the parsing.
CONCURRENT_ITEMS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.25
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 20 * 1024 * 1024
DOWNLOAD_WARNSIZE = 0
REDIRECT_MAX_TIMES = 5
DEPTH_LIMIT = 20
URLLENGTH_LIMIT = 2048
RETRY_TIMES = 1
COOKIES_ENABLED = False
LOG_LEVEL = "INFO"

# Ours (see config.py for what each means).
GALLERY_URI = "./gallery"
GALLERY_PROGRESS = False  # the live display (gallery crawl on a terminal)
GALLERY_HEARTBEAT = 0.0  # seconds between one-line progress reports on stderr; 0: none
POLICY_ALLOW_LOOPBACK = False
POLICY_OPTOUT_FILES: list[str] = []
POLICY_SITE_FILE_TIMEOUT = 15.0
INDEXER_WORKERS = 2
INDEXER_BATCH_SIZE = 64
# The decoder's own limits are the defaults (a search query is held to the same ones).
INDEXER_MAX_IMAGE_BYTES = DecodeLimits.max_bytes
INDEXER_MAX_PIXELS = DecodeLimits.max_pixels
INDEXER_MIN_WIDTH = 32  # spacers and 16/24 px icons: counted as indexer/skipped/too_small; 0 keeps them
INDEXER_MIN_HEIGHT = 32
GALLERY_RENDER = "auto"
GALLERY_FRONTIER = None
GALLERY_FRONTIER_BUSY_TTL = 30.0
GALLERY_FRONTIER_LEASE_TTL = 60.0
GALLERY_FRONTIER_SITE_FILE_TTL = 24 * 3600.0
GALLERY_RENDER_BROWSER = None  # Debian's headless shell when installed, else its full Chromium
GALLERY_RENDER_MAX_PAGES = 4
GALLERY_RENDER_SCROLL_STEPS = 5
GALLERY_RENDER_BUDGET = 15.0
GALLERY_RENDER_CONTEXT_PAGES = 50
GALLERY_RENDER_PROBE_PAGES = 3
GALLERY_PAGE_CACHE = "auto"

# Rendering (scrapy-playwright's download handlers, for requests with meta["playwright"]) is
# switched on by this add-on unless GALLERY_RENDER is "never"; see crawler/render/.
ADDONS = {
    "crawler.render.addon.RenderAddon": 0,
    "crawler.frontier.FrontierAddon": 0,
    "crawler.downloadermiddlewares.page_cache.PageCacheAddon": 0,
}
