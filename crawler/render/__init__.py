"""Rendering of script-built pages in Chromium through scrapy-playwright, for requests the spider
marks with meta["playwright"]; everything else stays plain HTTP.

addon.py switches the download handler on (unless GALLERY_RENDER is "never"); handler.py owns
each page's lifecycle (budget, closing, context recycling); session.py answers every request
the page's browser makes, through guard.py, which applies the crawl's own policy.
"""

from scrapy.exceptions import IgnoreRequest


class RenderFailed(IgnoreRequest):
    """A page could not be rendered; `reason` becomes crawl/skipped/render_<reason>."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"render failed ({reason}){': ' + detail if detail else ''}")
        self.reason = reason
