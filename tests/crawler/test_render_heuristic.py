"""The auto-render decision, one row per kind of page."""

import pytest
from parsel import Selector

from crawler.extract import extract_images
from crawler.render_heuristic import HostRenderLearner, page_signals, should_render

# (case, body HTML, render?, reason)
CASES = [
    ("plain images, no script", '<img src="a.jpg"><img src="b.jpg">', False, "no_script"),
    ("text only, no script", "<p>hello</p>", False, "no_script"),
    ("static gallery with a menu script", '<img src="a.jpg"><img src="b.jpg"><img src="c.jpg"><script src="/menu.js"></script>', False, "static_enough"),
    ("article with analytics, no images", "<p>" + "words " * 60 + "</p><script src='/stats.js'></script>", False, "static_enough"),
    ("JSON-LD is not a script", '<img src="a.jpg"><script type="application/ld+json">{"img": "<img"}</script>', False, "no_script"),
    ("noscript fallback", '<noscript><img src="a.jpg"></noscript><script src="/app.js"></script>', True, "noscript_fallback"),
    ("placeholder img", '<img src="data:image/gif;base64,R0lGOD" class="x"><script src="/x.js"></script>', True, "placeholders"),
    ("img without any URL", "<img alt='soon'><script src='/x.js'></script>", True, "placeholders"),
    ("lazy class on a div", '<div class="lazyload" data-x="1">.</div><script src="/x.js"></script>', True, "lazy_markers"),
    ("data-bg background", '<div data-bg="/hero.jpg">.</div><script src="/x.js"></script>', True, "lazy_markers"),
    ("readable lazy img needs no render", '<img class="lazy" src="data:," data-src="a.jpg"><img src="b.jpg"><img src="c.jpg"><script src="/lazysizes.js"></script>', False, "static_enough"),
    ("empty gallery container", '<div id="gallery"></div><script src="/app.js"></script>' + "<p>" + "words " * 60 + "</p>", True, "empty_container"),
    ("empty data hook", '<section data-endpoint="/api/photos"></section><script src="/app.js"></script>', True, "empty_container"),
    ("SPA mount", '<div id="root"></div><script src="/bundle.js"></script>', True, "empty_container"),
    ("inline image builder", "<p>" + "words " * 60 + "</p><script>document.body.appendChild(document.createElement('img'))</script>", True, "script_images"),
    ("fetch then render, one image", '<img src="logo.png"><p>' + "words " * 60 + "</p><script>fetch('/api').then(r => r.json())</script>", True, "script_images"),
    ("gallery library by name", '<p>' + "words " * 60 + '</p><script src="/js/masonry.pkgd.min.js"></script>', True, "script_images"),
    ("library but many images", '<img src="a.jpg"><img src="b.jpg"><img src="c.jpg"><script src="/js/masonry.js"></script>', False, "static_enough"),
    ("app shell, no images, no text", '<h1>Photos</h1><script src="/main.js"></script>', True, "empty_shell"),
]


@pytest.mark.parametrize(("case", "body", "render", "reason"), CASES, ids=[c[0] for c in CASES])
def test_should_render(case, body, render, reason):
    sel = Selector(text=f"<html><body>{body}</body></html>")
    hint = should_render(page_signals(sel, images=len(extract_images(sel, "http://example.org/"))))
    assert (hint.render, hint.reason) == (render, reason)


def test_a_host_where_rendering_never_helps_is_left_alone():
    learner = HostRenderLearner(probe_pages=3)
    for _ in range(3):
        assert learner.worth_rendering("static.example")
        learner.record("static.example", found_more=False)
    assert not learner.worth_rendering("static.example")
    assert learner.worth_rendering("other.example")


def test_one_render_that_helped_keeps_the_host_on():
    learner = HostRenderLearner(probe_pages=2)
    learner.record("app.example", found_more=True)
    for _ in range(10):
        learner.record("app.example", found_more=False)
    assert learner.worth_rendering("app.example")
