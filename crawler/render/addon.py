"""Switch rendering on: scrapy-playwright's handler (our subclass) for http and https, with the
browser launched from Debian's Chromium. Nothing is installed when GALLERY_RENDER is "never", so
a crawl that never renders starts no Playwright driver at all."""

from crawler.config import RenderConfig

HANDLER = "crawler.render.handler.RenderingDownloadHandler"
ABORT_REQUEST = "crawler.render.handler.refuse_unguarded"  # the handler refuses to run with another
BROWSER_PROVIDER = "crawler.render.handler.DriverOnFirstRender"

# --no-sandbox: we run as root in containers, where Chromium's sandbox cannot start.
# The rest keep Chromium from phoning home: on a closed network its background connections
# are refused by the dozen and it looks up Google's hosts at every start.
BROWSER_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class RenderAddon:
    def update_settings(self, settings) -> None:
        config = RenderConfig.from_settings(settings)
        if config.mode == "never":
            return
        for scheme in ("http", "https"):
            settings["DOWNLOAD_HANDLERS"].set(scheme, HANDLER, priority="addon")
        # No user_data_dir anywhere: Playwright gives each launch a fresh temporary profile, and
        # a persistent context opened by both the http and the https handler would collide.
        playwright = {
            "PLAYWRIGHT_BROWSER_TYPE": "chromium",
            "PLAYWRIGHT_BROWSER_PROVIDER": BROWSER_PROVIDER,
            "PLAYWRIGHT_LAUNCH_OPTIONS": {
                "executable_path": config.browser,
                "headless": True,
                "args": list(BROWSER_ARGS),
            },
            "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": config.max_pages,
            "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": config.budget * 1000,
            "PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER": True,
            # Every request of a page is answered by the page's own route (session.py); this
            # hook sees only those of a page that route could not be set up on.
            "PLAYWRIGHT_ABORT_REQUEST": ABORT_REQUEST,
        }
        for name, value in playwright.items():
            settings.set(name, value, priority="addon")
