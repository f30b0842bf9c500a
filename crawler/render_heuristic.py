"""When a page is worth rendering: a pure decision over what its static HTML shows, and a per-host
memory of whether rendering ever found more. Used by the spider in `--render auto`.

Rendering costs a browser page (tens of times the CPU of parsing the HTML), so auto mode renders
only pages whose static HTML carries a sign that images are built by script, and stops
rendering a host once a few renders there found nothing the static HTML did not already have.

The signs, strongest first (`should_render` returns the first that holds, as its reason):

| reason               | what the static HTML shows                                                      |
|----------------------|---------------------------------------------------------------------------------|
| `no_script`          | (no render) no executable <script>: nothing can build anything                  |
| `noscript_fallback`  | an <img> inside <noscript>: the page's own admission that script builds images  |
| `placeholders`       | <img> elements with no usable URL (empty, or a data: placeholder) left to fill  |
| `lazy_markers`       | lazy-load hooks we cannot read: a lazy class or data-bg / data-src on non-<img> |
| `empty_container`    | an empty element that script fills: data-* hooks, or an id/class such as        |
|                      | gallery, grid, photos, feed, masonry, or a single-page-app mount (#app, #root)  |
| `script_images`      | at most FEW_IMAGES images, and a script that builds images or loads data        |
|                      | (createElement('img'), new Image, innerHTML with <img, fetch, XMLHttpRequest,   |
|                      | IntersectionObserver) or a known lazy-load / gallery / SPA library              |
| `empty_shell`        | no images and next to no text (< SHELL_TEXT characters): an app shell           |
| `static_enough`      | (no render) none of the above                                                   |
"""

import re
from dataclasses import dataclass, field

from parsel import Selector

# A page with more extractable images than this is taken as served, not built, unless a
# stronger sign (placeholders, hooks, fallbacks) says otherwise.
FEW_IMAGES = 2
# Visible text below this, with scripts and no image, is a shell that script fills.
SHELL_TEXT = 200

# Script types that a browser executes; anything else (JSON-LD, templates) is data.
_JS_TYPES = {"", "text/javascript", "application/javascript", "module", "text/ecmascript", "application/ecmascript"}
_LAZY_CLASSES = re.compile(r"(?:^|\s)(?:lazy|lazyload|lazyloading|lozad|b-lazy|js-lazy\S*|lazy-\S+)(?:\s|$)", re.I)
_LAZY_ATTRS = ("data-bg", "data-background", "data-background-image", "data-lazy", "data-lazy-background", "data-bgset")
_HOOK_NAMES = re.compile(r"gallery|grid|photos?|images?|pictures?|feed|masonry|carousel|slider|results|infinite|^app$|^root$", re.I)
_SCRIPT_BUILDS = re.compile(
    r"createElement\(\s*['\"]img['\"]|new\s+Image\s*\(|<img\b|\.src\s*=|fetch\s*\(|XMLHttpRequest|IntersectionObserver",
    re.I,
)
_LIBRARIES = re.compile(
    r"lazysizes|lozad|lazyload|vanilla-lazyload|masonry|isotope|infinite-?scroll|photoswipe|swiper|flickity|"
    r"react|vue|angular|svelte|preact|next/|nuxt",
    re.I,
)


@dataclass(frozen=True)
class PageSignals:
    """What one page's static HTML says about script-built images (counts of elements)."""

    images: int  # images extract_images found in the static HTML
    scripts: int  # executable <script> elements, inline or external
    noscript_images: int  # <img> inside <noscript>
    placeholders: int  # <img> without any usable URL
    lazy_markers: int  # lazy-load hooks whose URL extract_images cannot read
    empty_hooks: int  # empty elements that look like a container script fills
    building_scripts: int  # scripts that build images or fetch data, or known libraries
    text_chars: int  # visible text in <body>, whitespace collapsed


@dataclass(frozen=True)
class RenderHint:
    render: bool
    reason: str


def page_signals(sel: Selector, *, images: int) -> PageSignals:
    """Count the signs in a parsed page; `images` is how many images it yields unrendered."""
    scripts = [s for s in sel.xpath("//script") if s.attrib.get("type", "").strip().lower() in _JS_TYPES]
    building = 0
    for script in scripts:
        src = script.attrib.get("src", "")
        text = "" if src else "".join(script.xpath("text()").getall())
        # Inline code is read for what it does; an external file only by its name.
        if (src and _LIBRARIES.search(src)) or _SCRIPT_BUILDS.search(text):
            building += 1
    placeholders = 0
    for img in sel.xpath("//img[not(ancestor::noscript)]"):
        if not _has_usable_url(img.attrib):
            placeholders += 1
    lazy = 0
    for element in sel.xpath("//body//*[not(self::img) and not(self::source) and not(self::script)]"):
        attrs = element.attrib
        if any(name in attrs for name in _LAZY_ATTRS) or "data-src" in attrs or "data-srcset" in attrs:
            lazy += 1
        elif _LAZY_CLASSES.search(attrs.get("class", "")):
            lazy += 1
    hooks = 0
    for element in sel.xpath("//body//*[self::div or self::section or self::ul or self::ol or self::main][not(*)]"):
        if "".join(element.xpath("text()").getall()).strip():
            continue
        attrs = element.attrib
        named = " ".join((attrs.get("id", ""), attrs.get("class", ""))).split()
        if any(name.startswith("data-") for name in attrs) or any(_HOOK_NAMES.search(n) for n in named):
            hooks += 1
    text = " ".join(sel.xpath("//body//text()[not(ancestor::script) and not(ancestor::style) and not(ancestor::noscript)]").getall())
    return PageSignals(
        images=images,
        scripts=len(scripts),
        noscript_images=len(sel.xpath("//noscript//img")),
        placeholders=placeholders,
        lazy_markers=lazy,
        empty_hooks=hooks,
        building_scripts=building,
        text_chars=len(" ".join(text.split())),
    )


def should_render(signals: PageSignals) -> RenderHint:
    """The decision table of this module's docstring, in order."""
    if signals.scripts == 0:
        return RenderHint(False, "no_script")
    if signals.noscript_images:
        return RenderHint(True, "noscript_fallback")
    if signals.placeholders:
        return RenderHint(True, "placeholders")
    if signals.lazy_markers:
        return RenderHint(True, "lazy_markers")
    if signals.empty_hooks:
        return RenderHint(True, "empty_container")
    if signals.building_scripts and signals.images <= FEW_IMAGES:
        return RenderHint(True, "script_images")
    if signals.images == 0 and signals.text_chars < SHELL_TEXT:
        return RenderHint(True, "empty_shell")
    return RenderHint(False, "static_enough")


@dataclass
class _HostRecord:
    renders: int = 0
    helped: int = 0


@dataclass
class HostRenderLearner:
    """Per host: did rendering ever find images the static HTML lacked?

    A host is rendered (when the page hints so) until `probe_pages` renders there found nothing
    new; one render that found more keeps the host on for the rest of the crawl.
    """

    probe_pages: int
    _hosts: dict[str, _HostRecord] = field(default_factory=dict)

    def worth_rendering(self, host: str) -> bool:
        record = self._hosts.get(host)
        return record is None or record.helped > 0 or record.renders < self.probe_pages

    def record(self, host: str, *, found_more: bool) -> None:
        record = self._hosts.setdefault(host, _HostRecord())
        record.renders += 1
        record.helped += int(found_more)


def _has_usable_url(attrs: dict[str, str]) -> bool:
    for name in ("data-srcset", "srcset", "data-src", "data-lazy-src", "data-original", "src"):
        value = attrs.get(name, "").strip()
        if value and not value.startswith("data:"):
            return True
    return False
