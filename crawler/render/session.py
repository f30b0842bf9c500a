"""One page render: the route that answers every request the page makes, the image URLs it
asked for, and the bounded waiting and scrolling that let script-built content appear.

Why a route of our own rather than scrapy-playwright's PLAYWRIGHT_ABORT_REQUEST hook alone:
Playwright does not route redirect hops (a request the browser follows to a new location is
never shown to a route handler), so a hook that only says "abort or continue" cannot check
where a redirect leads. Here every request is fetched through `route.fetch` with redirects
off, and each hop is checked by the guard before it is followed, as Scrapy's middlewares do
for ours. Our route is registered after scrapy-playwright's and so runs first; it answers
every request itself and never falls back.

Images, fonts and media are aborted in the browser: images are recorded and fetched by the
spider through the policy gate; fonts and media are of no use to us.
"""

import asyncio
import time
from contextlib import suppress
from urllib.parse import urldefrag, urljoin, urlsplit

from playwright.async_api import Error as PlaywrightError

ABORTED_TYPES = frozenset({"image", "media", "font"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5  # as Scrapy's REDIRECT_MAX_TIMES
# A page is taken as settled once no request of its own has been in flight for QUIET seconds,
# no short timer it set is pending, and its DOM has shown no new image URL for DOM_QUIET
# seconds (benchmarks/coverage.py measures the choice). One wait lasts at most STEP seconds, of
# which at most DOM_STEP on the DOM: a page that polls or adds images forever must not hold us.
QUIET = 0.1
DOM_QUIET = 0.2
STEP = 3.0
DOM_STEP = 1.5
DOM_BUDGET = 3.0  # seconds of DOM waiting per render, all settles together
# Viewport positions visited per sweep to the bottom; lazy loaders watch what intersects the
# viewport, so jumping straight to the bottom would skip everything in between.
MAX_SWEEP_POSITIONS = 40

# Installed in every document before its own scripts (an init script of each page): watches
# the DOM for image URLs it has not shown before, and the short timers a script set. A carousel
# cycling through the same slides shows no new URL, and a timer set from a timer's callback
# is followed only TIMER_DEPTH deep, so neither holds a render to its cap; the slides are in
# the DOM, where the snapshot finds them.
WATCH_SCRIPT = """(() => {
  if (window.__galleryWatch) return;
  const TIMER_MAX_MS = 1000, TIMER_DEPTH = 2;
  const seen = new Set(), pending = new Set();
  let last = performance.now(), depth = 0;
  const note = (value) => {
    if (value && !seen.has(value)) { seen.add(value); last = performance.now(); }
  };
  const ATTRS = ["src", "srcset", "data-src", "data-srcset", "poster", "href", "xlink:href"];
  const look = (el) => {
    for (const name of ATTRS) note(el.getAttribute(name));
    const style = el.getAttribute("style");
    if (style && style.includes("url(")) note(style);
  };
  const SELECTOR = "img,source,image,video,[style*='url(']";
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") {
        if (r.attributeName !== "style" || (r.target.getAttribute("style") || "").includes("url(")) {
          note(r.target.getAttribute(r.attributeName));
        }
        continue;
      }
      for (const node of r.addedNodes) {
        if (node.nodeType !== 1) continue;
        if (node.matches(SELECTOR)) look(node);
        if (node.firstElementChild) for (const el of node.querySelectorAll(SELECTOR)) look(el);
      }
    }
  }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: [...ATTRS, "style"] });
  const setTimer = window.setTimeout, clearTimer = window.clearTimeout;
  window.setTimeout = function (fn, delay, ...args) {
    if (typeof fn !== "function" || depth >= TIMER_DEPTH || (Number(delay) || 0) > TIMER_MAX_MS) {
      return setTimer.call(window, fn, delay, ...args);
    }
    const inner = depth + 1;
    const id = setTimer.call(window, function () {
      pending.delete(id);
      const outer = depth;
      depth = inner;
      try { return fn.apply(this, arguments); } finally { depth = outer; }
    }, delay, ...args);
    pending.add(id);
    return id;
  };
  window.clearTimeout = function (id) { pending.delete(id); return clearTimer.call(window, id); };
  // Milliseconds the DOM has shown nothing new, 0 while a watched timer is pending.
  Object.defineProperty(window, "__galleryWatch", {
    value: () => (pending.size ? 0 : performance.now() - last),
  });
})();"""
_UNWATCHED_MS = 1e9
_QUIET_FOR = f"() => window.__galleryWatch ? window.__galleryWatch() : {_UNWATCHED_MS:.0f}"

_HEIGHT = "() => document.documentElement ? document.documentElement.scrollHeight : 0"
_SWEEP = """async (maxPositions) => {
    const frame = () => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
    const root = document.documentElement;
    const step = Math.max(window.innerHeight, 200);
    // Only down to where the page ended when this sweep began: what it grows meanwhile is the
    // next sweep's, so an endless page costs at most `steps` sweeps.
    const bottom = root.scrollHeight;
    for (let n = 0; n < maxPositions && window.scrollY + window.innerHeight < bottom; n++) {
        window.scrollBy(0, step);
        await frame();
    }
}"""


async def let_go(route) -> None:
    """Give up a request whose page or browser is gone. Playwright waits for every routed
    request to be answered, and a wait that can never end is reported as a task destroyed while
    pending; falling back ends it (the context's handler then refuses the request)."""
    with suppress(PlaywrightError):
        await route.fallback()


class PageSession:
    def __init__(self, *, guard, page_url: str, stats, fetch_timeout_ms: float):
        self.guard = guard
        self.page_url = page_url
        self.stats = stats
        self.fetch_timeout_ms = fetch_timeout_ms
        self.page = None
        self.image_urls: dict[str, None] = {}  # an ordered set: first sighting first
        self.redirected = False  # the page's own navigation was redirected (Scrapy had not been)
        self.crashed = False
        self.on_retry = lambda: None  # called when this render starts again in a new browser
        self.stage = "waiting"  # where the render is, for the log line of one that failed
        self._navigated = False
        self._inflight = 0
        self._requests = 0
        self._last_activity = time.monotonic()
        self._dom_left = DOM_BUDGET  # seconds settle may still wait on the DOM
        self._unwatched = False  # counted once: the page's DOM could not be watched

    async def attach(self, page) -> None:
        """Called for the page of this render (new or reused), before it navigates. Called again
        with a new page when scrapy-playwright retries a render whose browser died."""
        if self.page is not None:
            self.stats.inc_value("render/retried_in_new_browser")
            self.on_retry()
        self.page = page
        self._navigated = self.crashed = False
        page.on("popup", self._close_popup)
        page.on("pageerror", self._count_js_error)
        page.on("crash", self._mark_crashed)
        await page.route("**", self._route)

    @property
    def browser_lost(self) -> bool:
        """The browser under this page died (crashed, killed); scrapy-playwright starts another."""
        browser = self.page.context.browser if self.page is not None else None
        return browser is not None and not browser.is_connected()

    def detach(self) -> None:
        """Stop listening to the page, so that a reused page answers to its next session only.
        (Its route goes when scrapy-playwright unroutes the page before the next navigation.)"""
        if self.page is None:
            return
        for event, listener in (("popup", self._close_popup), ("pageerror", self._count_js_error), ("crash", self._mark_crashed)):
            self.page.remove_listener(event, listener)

    async def settle(self, *, until: float | None = None) -> bool:
        """Wait until the network has been quiet for QUIET seconds and the DOM for DOM_QUIET
        (no watched timer pending); False if STEP ran out first. After DOM_STEP seconds only
        the network is waited for: a page adding images forever gets no more of our time.
        `until` (monotonic) cuts the wait short too: a page requesting something every few
        milliseconds is never quiet, and must not take the rest of its budget here."""
        start = time.monotonic()
        deadline = min(start + STEP, until) if until is not None else start + STEP
        dom_deadline = start + min(DOM_STEP, self._dom_left)
        try:
            while time.monotonic() < deadline:
                if self._inflight == 0 and time.monotonic() - self._last_activity >= QUIET:
                    if time.monotonic() >= dom_deadline:
                        if self._dom_left > 0 and time.monotonic() - start >= self._dom_left:
                            self.stats.inc_value("render/dom_wait_capped")  # once per render
                        return True
                    if await self._dom_quiet_for() >= DOM_QUIET:
                        return True
                await asyncio.sleep(QUIET / 3)
            return False
        finally:
            self._dom_left = max(0.0, self._dom_left - (time.monotonic() - start))

    async def _dom_quiet_for(self) -> float:
        """Seconds since the page's DOM last showed a new image URL (0 while a watched timer
        is pending); a page that cannot answer is taken as quiet."""
        try:
            quiet_ms = float(await self.page.evaluate(_QUIET_FOR))
        except PlaywrightError:
            return float("inf")
        if quiet_ms >= _UNWATCHED_MS and not self._unwatched:
            self._unwatched = True  # the watch script is missing: only the network is waited for
            self.stats.inc_value("render/dom_unwatched")
        return quiet_ms / 1000

    async def scroll(self, steps: int, *, until: float) -> str | None:
        """Sweep to the bottom up to `steps` times, settling after each, until nothing grows
        or the monotonic clock passes `until` (what the page built so far is kept).

        Returns why scrolling stopped while the page was still growing: "steps" (an endless
        scroll) or "time" (a page slower than its budget); None when it stopped growing."""
        for _ in range(steps):
            if time.monotonic() >= until:
                return "time"
            before = (await self.page.evaluate(_HEIGHT), self._requests)
            await self.page.evaluate(_SWEEP, MAX_SWEEP_POSITIONS)
            await self.settle(until=until)
            if (await self.page.evaluate(_HEIGHT), self._requests) == before:
                return None
        return "steps" if steps > 0 else None

    async def _route(self, route, request) -> None:
        self._inflight += 1
        self._requests += 1
        self._last_activity = time.monotonic()
        try:
            await self._answer(route, request)
        except PlaywrightError:
            # The page or browser closed under this request (budget spent, crash): nobody is
            # waiting for an answer any more.
            self.stats.inc_value("render/requests/interrupted")
            await let_go(route)
        finally:
            self._inflight -= 1
            self._last_activity = time.monotonic()

    async def _answer(self, route, request) -> None:
        kind = request.resource_type
        if kind in ABORTED_TYPES:
            if kind == "image" and request.url.startswith(("http://", "https://")):
                self.image_urls.setdefault(urldefrag(request.url)[0])
            self.stats.inc_value(f"render/requests/aborted/{kind}")
            await route.abort("blockedbyclient")
            return
        main_navigation = request.is_navigation_request() and request.frame.parent_frame is None
        if main_navigation:
            if self._navigated:
                # Script sending the page elsewhere: we keep the page we came to render. A 204
                # leaves the current document in place; an aborted navigation would commit an
                # error page over it.
                self.stats.inc_value("render/navigation_blocked")
                await route.fulfill(status=204)
                return
            self._navigated = True
        await self._fetch(route, request, follow_redirects=not main_navigation)

    async def _fetch(self, route, request, *, follow_redirects: bool) -> None:
        url, method, body = request.url, request.method, request.post_data_buffer
        for _ in range(MAX_REDIRECTS + 1):
            decision = await self.guard.check(url, page_url=self.page_url)
            if not decision.allowed:
                self.stats.inc_value("render/requests/blocked")
                await route.abort("blockedbyclient")
                return
            try:
                response = await route.fetch(
                    url=url, method=method, post_data=body, max_redirects=0, timeout=self.fetch_timeout_ms
                )
            except PlaywrightError:
                if self.page is not None and self.page.is_closed():
                    raise
                self.stats.inc_value("render/requests/failed")
                await route.abort("failed")
                return
            location = response.headers.get("location")
            if response.status not in REDIRECT_STATUSES or not location:
                self.stats.inc_value("render/requests/fetched")
                await route.fulfill(response=response)
                return
            await response.dispose()
            target = urljoin(url, location)
            if not follow_redirects:
                # The page itself: Scrapy fetched it a moment ago without a redirect, and a
                # document fulfilled from elsewhere would resolve its links against the wrong URL.
                self.redirected = True
                await route.abort("blockedbyclient")
                return
            if urlsplit(target).scheme != urlsplit(url).scheme:
                # route.fetch cannot change the scheme of a request.
                self.stats.inc_value("render/requests/redirect_scheme")
                await route.abort("blockedbyclient")
                return
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
            url = target
        self.stats.inc_value("render/requests/too_many_redirects")
        await route.abort("blockedbyclient")

    async def _close_popup(self, popup) -> None:
        self.stats.inc_value("render/popups_closed")
        try:
            await popup.close()
        except PlaywrightError:
            pass  # closed with its context already

    def _count_js_error(self, error) -> None:
        self.stats.inc_value("render/js_errors")

    def _mark_crashed(self, page) -> None:
        self.crashed = True
