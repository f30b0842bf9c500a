"""Script-built pages for the rendering tests: which images only a browser finds, and the pages
that misbehave (hang, scroll forever, throw, open popups, navigate away)."""

import json
from pathlib import Path

from gallery.demo import make_picture
from tests.fixture_site import jpeg_bytes

# page -> the image paths only a rendered page shows
SCRIPT_IMAGES = {
    "fetched.html": ["img/fetched-1.jpg", "img/fetched-2.jpg"],
    "inline.html": ["img/inline.jpg"],
    "lazy.html": ["img/lazy-far.jpg"],
    "background.html": ["img/background.jpg"],
    "endless.html": ["img/endless-0.jpg", "img/endless-1.jpg"],
    "misbehaves.html": ["img/misbehaves.jpg"],
    # Built by a timer 300 ms after DOMContentLoaded: no network traffic announces it.
    "timer.html": ["img/timer.jpg"],
    # A carousel that rotates forever: every slide is in the DOM, and it must not hold the render.
    "carousel.html": ["img/slide-0.jpg", "img/slide-1.jpg", "img/slide-2.jpg"],
    # Adds an image every 100 ms, forever: bounded, and what it built so far is kept.
    "forever.html": ["img/forever.jpg?n=0"],
}
STATIC_IMAGES = {"static.html": ["img/static-1.jpg", "img/static-2.jpg", "img/static-3.jpg"]}
HANGS = "hangs.html"

_GALLERY_JS = """
const box = document.getElementById("gallery");
fetch(box.dataset.src).then(r => r.json()).then(items => {
  for (const item of items) {
    const img = document.createElement("img");
    img.src = item.src; img.alt = item.alt;
    box.appendChild(img);
  }
});
"""

_PAGES = {
    "static.html": "<script>document.title = 'static';</script>"
    + "".join(f'<img src="/{path}" alt="static">' for path in STATIC_IMAGES["static.html"]),
    # fetch-then-render, from an external script and a JSON API on the same origin.
    "fetched.html": '<div id="gallery" data-src="/api/photos.json"></div><script src="/js/gallery.js"></script>',
    # Built inline; also asks for things robots.txt forbids: the image (fetched by the spider
    # through the policy gate, and refused there) and data (refused by the browser's guard).
    "inline.html": "<p>inline</p><script>"
    'for (const src of ["/img/inline.jpg", "/private/secret.jpg"]) {'
    ' const img = document.createElement("img"); img.src = src; document.body.appendChild(img); }'
    'fetch("/private/data.json").catch(() => {});'
    "</script>",
    # A lazy loader: the image gets its URL only when scrolled into view, far below the fold.
    "lazy.html": '<div style="height: 5000px">tall</div><span class="lazyload" data-target="/img/lazy-far.jpg"></span>'
    "<script>new IntersectionObserver((entries, observer) => { for (const e of entries) if (e.isIntersecting) {"
    ' const img = document.createElement("img"); img.src = e.target.dataset.target; e.target.appendChild(img);'
    " observer.unobserve(e.target); } }).observe(document.querySelector(\".lazyload\"));</script>",
    # An image only the network sees: a CSS background set by script.
    "background.html": '<div id="hero" data-bg="/img/background.jpg" style="width:100px;height:100px"></div>'
    '<script>const hero = document.getElementById("hero");'
    " hero.style.backgroundImage = `url(${hero.dataset.bg})`;</script>",
    # Infinite scroll: a new image every time the bottom is reached, forever.
    "endless.html": '<div id="feed"></div><script>let n = 0; const feed = document.getElementById("feed");'
    "function more() { const d = document.createElement(\"div\"); d.style.height = \"1500px\";"
    ' const img = document.createElement("img"); img.src = `/img/endless-${n++ % 2}.jpg`;'
    " d.appendChild(img); feed.appendChild(d); }"
    " more(); window.addEventListener(\"scroll\", () => {"
    " if (window.innerHeight + window.scrollY >= document.body.scrollHeight - 10) more(); });</script>",
    # Throws, opens a popup and tries to navigate away; its image must still be found.
    "misbehaves.html": '<div id="gallery"></div><script>'
    'const img = document.createElement("img"); img.src = "/img/misbehaves.jpg";'
    ' document.getElementById("gallery").appendChild(img);'
    ' window.open("/popup.html");'
    ' setTimeout(() => { location.href = "/elsewhere.html"; }, 50);'
    ' throw new Error("broken script");</script>',
    "timer.html": "<p>timer</p><script>document.addEventListener('DOMContentLoaded', () => setTimeout(() => {"
    ' const img = document.createElement("img"); img.src = "/img/timer.jpg"; document.body.appendChild(img);'
    " }, 300));</script>",
    "carousel.html": '<div id="carousel" style="width:200px;height:100px;overflow:hidden"></div><script>'
    'const box = document.getElementById("carousel"); const slides = [];'
    " for (let n = 0; n < 3; n++) { const img = document.createElement(\"img\"); img.src = `/img/slide-${n}.jpg`;"
    " img.className = n ? 'slide' : 'slide active'; box.appendChild(img); slides.push(img); }"
    " let at = 0; function turn() { slides[at].className = 'slide'; at = (at + 1) % 3;"
    " slides[at].className = 'slide active'; box.style.transform = `translateX(${-at}px)`; setTimeout(turn, 200); }"
    " setTimeout(turn, 200);</script>",
    # Its first image is allowed; the rest, one every 100 ms, are under /private/: each is
    # refused by the spider's policy gate without a download, so "forever" stays cheap here.
    "forever.html": '<div id="feed" style="height:100px;overflow:hidden"></div><script>let n = 0;'
    ' const feed = document.getElementById("feed"); function more() { const img = document.createElement("img");'
    " img.src = n ? `/private/forever-${n}.jpg` : '/img/forever.jpg?n=0'; n++; feed.prepend(img); }"
    " more(); setInterval(more, 100);</script>",
    # Never finishes: the renderer is stuck in a loop; the render must be cut by its budget.
    HANGS: '<div id="gallery"></div><script>while (true) {}</script>',
}


def build_render_site(root: Path) -> Path:
    root = Path(root)
    for folder in ("img", "js", "api", "private"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    paths = [p for paths in (*SCRIPT_IMAGES.values(), *STATIC_IMAGES.values()) for p in paths]
    for seed, path in enumerate(paths, start=700):
        (root / path.partition("?")[0]).write_bytes(jpeg_bytes(make_picture(seed)))
    (root / "private" / "secret.jpg").write_bytes(jpeg_bytes(make_picture(799)))
    (root / "private" / "data.json").write_text("{}")
    (root / "js" / "gallery.js").write_text(_GALLERY_JS)
    (root / "api" / "photos.json").write_text(
        json.dumps([{"src": f"/{path}", "alt": f"fetched {n}"} for n, path in enumerate(SCRIPT_IMAGES["fetched.html"])])
    )
    for name, body in {**_PAGES, "popup.html": "popup", "elsewhere.html": "elsewhere"}.items():
        (root / name).write_text(f"<!doctype html><html><body>{body}</body></html>")
    links = " ".join(f'<a href="{name}">{name}</a>' for name in _PAGES)
    (root / "index.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    return root
