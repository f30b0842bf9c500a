"""scrapy-playwright's download handler, with the page lifecycle this crawl needs.

Per render: at most GALLERY_RENDER_MAX_PAGES at once; one time budget from navigation to the
last snapshot (a hung page is closed when it runs out). A page that rendered cleanly is blanked
and kept for the next render in its context: a new page costs a new renderer process, and
reusing pages about halves the CPU per rendered page here. Any page that failed (timeout,
crash, error) is closed. The context is replaced after GALLERY_RENDER_CONTEXT_PAGES renders
and closed, with its idle pages, once its last render is done, so what a browser context
accumulates over a long crawl is dropped regularly; at the end of the crawl every page is
closed. A failed render raises RenderFailed with a reason, which the spider counts as a skip;
nothing here logs an error. A browser that dies is relaunched by scrapy-playwright, which also
retries the renders it was doing on fresh pages (each counts as `browser_crashed` if that fails).

Everything put into request.meta for scrapy-playwright is built here, at download time, and
taken out again before the response leaves: Page objects and callbacks never reach a queue
that pickles requests.
"""

import asyncio
import logging
import time
import weakref
from collections import Counter, defaultdict
from functools import partial

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from scrapy import signals
from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler
from scrapy_playwright.provider import PlaywrightBrowserProvider

from crawler.config import RenderConfig
from crawler.render.addon import ABORT_REQUEST
from crawler.render import RenderFailed
from crawler.render.guard import BrowserRequestGuard
from crawler.render.session import WATCH_SCRIPT, PageSession, let_go

logger = logging.getLogger(__name__)

# The meta keys this handler sets for scrapy-playwright (and it sets in return).
_PLAYWRIGHT_META = (
    "playwright_context",
    "playwright_context_kwargs",
    "playwright_include_page",
    "playwright_page",
    "playwright_page_init_callback",
    "playwright_page_goto_kwargs",
)
# Scrolling stops once this share of the budget is spent, leaving the rest for the snapshot:
# a slow page then yields what it built so far instead of nothing.
SCROLL_SHARE = 0.7
PAGE_CLOSE_TIMEOUT = 5.0  # seconds; a page that will not close takes its context with it
# Seconds added to the budget of the pages that wait for the browser to start (the first one,
# or another after one died): its launch is not the page's fault (about a second here, more on
# a loaded machine).
BROWSER_START_ALLOWANCE = 10.0


def refuse_unguarded(playwright_request) -> bool:
    """scrapy-playwright's own route handler sees a request only when ours was not installed on
    the page (see session.py); refusing everything then keeps the browser in policy."""
    return True


class ContextRotation:
    """Names the browser context each new page goes to, moving on after `pages_per_context`.

    A retired context is closed once its last page is done (release returns True then)."""

    def __init__(self, *, pages_per_context: int):
        self.pages_per_context = pages_per_context
        self._generation = 0
        self._started: Counter[str] = Counter()
        self._active: Counter[str] = Counter()

    @property
    def current(self) -> str:
        return f"render-{self._generation}"

    def assign(self) -> str:
        name = self.current
        self._started[name] += 1
        self._active[name] += 1
        if self._started[name] >= self.pages_per_context:
            self._generation += 1
        return name

    def retire(self, name: str) -> None:
        if name == self.current:
            self._generation += 1

    def release(self, name: str) -> bool:
        self._active[name] -= 1
        if self._active[name] > 0 or name == self.current:
            return False
        del self._active[name], self._started[name]
        return True


class DriverOnFirstRender(PlaywrightBrowserProvider):
    """scrapy-playwright's browser provider, starting Playwright's driver when the first page is
    rendered rather than when the crawl starts: the driver (a Node process) takes about a second
    to start, which every crawl paid before its first request, and a crawl on static pages
    never needs it. The first render's budget already allows for a browser start."""

    async def start(self) -> None:
        pass  # see launch_browser

    async def launch_browser(self):
        if self.playwright is None:  # called under the handler's launch lock: one start
            await super().start()
        return await super().launch_browser()

    async def launch_persistent_context(self, context_kwargs: dict):
        if self.playwright is None:
            await super().start()
        return await super().launch_persistent_context(context_kwargs)


class RenderingDownloadHandler(ScrapyPlaywrightDownloadHandler):
    def __init__(self, crawler):
        super().__init__(crawler)
        self.render = RenderConfig.from_settings(crawler.settings)
        self.guard = BrowserRequestGuard.from_crawler(crawler)
        if crawler.settings.get("PLAYWRIGHT_ABORT_REQUEST") != ABORT_REQUEST:
            raise ValueError(f"PLAYWRIGHT_ABORT_REQUEST must stay {ABORT_REQUEST}: browser requests would bypass the policy")
        self._renders = asyncio.Semaphore(self.render.max_pages)
        self._rotation = ContextRotation(pages_per_context=self.render.context_pages)
        self._guarded_contexts: weakref.WeakSet = weakref.WeakSet()
        self._guarded_pages: weakref.WeakSet = weakref.WeakSet()
        self._idle_pages: dict[str, list] = defaultdict(list)  # context name -> blank pages
        # Context name -> the BrowserContext its pages are in, learnt from the pages themselves
        # (scrapy-playwright's own registry is not public API); forgotten when it closes.
        self._contexts: dict[str, object] = {}
        self._browser = None  # the browser of the last page set up
        self._context_kwargs = {
            "user_agent": crawler.settings.get("USER_AGENT"),
            "service_workers": "block",  # their requests would bypass the page's route
            "accept_downloads": False,
        }
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)

    async def download_request(self, request):
        if not request.meta.get("playwright"):
            return await super().download_request(request)
        async with self._renders:
            return await self._render(request)

    async def _render(self, request):
        meta = request.meta
        session = PageSession(
            guard=self.guard, page_url=request.url, stats=self.stats, fetch_timeout_ms=self.render.budget * 1000
        )
        context = self._rotation.assign()
        idle = self._idle_pages[context]
        while idle:
            page = idle.pop()
            if not page.is_closed():
                meta["playwright_page"] = page  # scrapy-playwright navigates it instead of a new one
                break
        # No browser seen running yet (the first render, or the first after one died): this
        # page waits for a launch too.
        browser_up = self._browser is not None and self._browser.is_connected()
        meta.update(
            playwright_context=context,
            playwright_context_kwargs=self._context_kwargs,
            playwright_include_page=True,  # we close it, whatever happens
            playwright_page_init_callback=partial(self._init_page, session, context, started_in=self._browser if browser_up else None),
            playwright_page_goto_kwargs={"wait_until": "domcontentloaded", "timeout": self.render.budget * 1000},
        )
        self.stats.inc_value("render/started")
        budget = self.render.budget + (0 if browser_up else BROWSER_START_ALLOWANCE)
        clean = False
        try:
            async with asyncio.timeout(budget) as deadline:

                def wait_for_new_browser() -> None:
                    # A render retried in a browser started meanwhile waits for that start too
                    # (unless its time ran out already: then it is being cancelled).
                    if not deadline.expired():
                        deadline.reschedule(deadline.when() + BROWSER_START_ALLOWANCE)

                session.on_retry = wait_for_new_browser
                response = await self._render_page(request, session, budget=budget)
            clean = not session.crashed
            return response
        except TimeoutError:
            raise self._failed(request, "timeout", detail=f"while {session.stage}") from None
        except PlaywrightTimeoutError:
            raise self._failed(request, "timeout", detail=f"while {session.stage}") from None
        except PlaywrightError as exc:
            raise self._failed(request, self._reason(session, exc), detail=str(exc).splitlines()[0]) from None
        finally:
            page = meta.get("playwright_page") or session.page
            for key in _PLAYWRIGHT_META:
                meta.pop(key, None)
            session.detach()
            if clean and await self._blank(page):
                self._idle_pages[context].append(page)
            elif session.page is None or not await self._close_page(page):
                # A page made but never handed to us, or one that would not close, is closed
                # with its context.
                self._rotation.retire(context)
            if self._rotation.release(context):
                await self._close_context(context)

    async def _render_page(self, request, session: PageSession, *, budget: float):
        scroll_until = time.monotonic() + SCROLL_SHARE * budget
        session.stage = "navigating"
        response = await super().download_request(request)
        page = request.meta["playwright_page"]
        session.stage = "settling"
        await session.settle()
        session.stage = "scrolling"
        capped = await session.scroll(self.render.scroll_steps, until=scroll_until)
        if capped:
            self.stats.inc_value(f"render/capped/{capped}")
        session.stage = "snapshot"
        html = await page.content()
        request.meta["render_image_urls"] = list(session.image_urls)
        self.stats.inc_value("render/pages")
        return response.replace(body=html.encode("utf-8"), encoding="utf-8")

    async def _init_page(self, session: PageSession, context_name: str, page, request, *, started_in=None) -> None:
        if session.page is None and started_in is not None and page.context.browser is not started_in:
            # The browser this render started with died before its first page was made: that
            # page waited for the next launch like a retried one.
            session.on_retry()
        self._contexts[context_name] = page.context
        self._browser = page.context.browser
        try:
            if page.context not in self._guarded_contexts:
                page.context.on("close", partial(self._forget_context, context_name, page.context))
                # Pages we did not open (popups) have no route of ours: refuse all they ask for.
                await page.context.route("**", self._refuse_stray)
                self._guarded_contexts.add(page.context)
            if page not in self._guarded_pages:
                # WebSockets are not routed like requests: a handler that never connects
                # refuses them. Unlike routes, it survives the page's reuse.
                await page.route_web_socket("**", self._refuse_websocket)
                # Every document of the page, before its own scripts: see session.settle. Added to
                # the page, not its context: a context's script missed the context's first page.
                await page.add_init_script(WATCH_SCRIPT)
                self._guarded_pages.add(page)
            await session.attach(page)
        except PlaywrightError:
            # The browser went away while the page was being set up; without our route the
            # page's requests meet refuse_unguarded, and the render fails on its own.
            self.stats.inc_value("render/setup_failed")

    async def _refuse_stray(self, route, request) -> None:
        self.stats.inc_value("render/requests/stray_refused")
        try:
            await route.abort("blockedbyclient")
        except PlaywrightError:
            await let_go(route)  # its page is gone already

    async def _refuse_websocket(self, websocket) -> None:
        self.stats.inc_value("render/requests/websocket_refused")
        try:
            await websocket.close()
        except PlaywrightError:
            pass  # the page is gone already

    def _forget_context(self, name: str, context, *_) -> None:
        if self._contexts.get(name) is context:
            del self._contexts[name]

    async def _blank(self, page) -> bool:
        """Unload the page's document (its timers and listeners with it) for reuse."""
        if page is None or page.is_closed():
            return False
        try:
            await asyncio.wait_for(page.goto("about:blank"), timeout=PAGE_CLOSE_TIMEOUT)
        except (PlaywrightError, TimeoutError):
            return False
        return True

    async def _close_page(self, page) -> bool:
        if page is None or page.is_closed():
            return True
        try:
            await asyncio.wait_for(page.close(run_before_unload=False), timeout=PAGE_CLOSE_TIMEOUT)
        except (PlaywrightError, TimeoutError):
            self.stats.inc_value("render/page_close_failed")
            return False
        return True

    async def _close_context(self, name: str) -> None:
        self._idle_pages.pop(name, None)  # closed with it
        # A context whose first page could not even be made is not known here: it has no pages
        # and goes with the browser, or at the end of the crawl.
        context = self._contexts.pop(name, None)
        if context is None:
            return  # closed already, e.g. with a crashed browser
        try:
            await asyncio.wait_for(context.close(), timeout=PAGE_CLOSE_TIMEOUT)
        except (PlaywrightError, TimeoutError):
            self.stats.inc_value("render/context_close_failed")
            return
        self.stats.inc_value("render/contexts_recycled")

    def _failed(self, request, reason: str, *, detail: str = "") -> RenderFailed:
        logger.info("render of %s skipped (%s) %s", request.url, reason, detail)
        return RenderFailed(reason, detail)

    @staticmethod
    def _reason(session: PageSession, exc: PlaywrightError) -> str:
        if session.redirected:
            return "redirected"
        if session.browser_lost:
            return "browser_crashed"
        if session.crashed or "crash" in exc.message.lower():
            return "crashed"
        if "closed" in exc.message.lower():
            return "browser_closed"
        if "executable doesn't exist" in exc.message.lower():
            return "browser_missing"
        return "failed"

    async def _spider_closed(self, spider=None, reason=None) -> None:
        # The engine closes the spider only when no download is left: once the idle pages are
        # closed, any page still open is a leak.
        for pages in self._idle_pages.values():
            for page in pages:
                await self._close_page(page)
        self._idle_pages.clear()
        open_pages = sum(len(context.pages) for context in self._contexts.values())
        self.stats.set_value("render/pages_open_at_close", open_pages)
        self.stats.set_value("render/contexts_open_at_close", len(self._contexts))
        # scrapy-playwright counts what refuse_unguarded aborted under its own name.
        if unguarded := self.stats.get_value("playwright/request_count/aborted"):
            self.stats.set_value("render/requests/unguarded_refused", unguarded)
