"""A bigger fixture site for resume and multi-worker tests: many pages, one image of its own on
each, and one image shared by every page (so repeat sightings cross a restart or a worker)."""

from pathlib import Path

from gallery.demo import make_picture
from indexer.store import Gallery
from tests.fixture_site import jpeg_bytes


def build_many_site(root: Path, *, pages: int, size: tuple[int, int] = (160, 120)) -> Path:
    """`size`: of each page's own image; a bigger one takes longer to analyse."""
    root = Path(root)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "img" / "shared.jpg").write_bytes(jpeg_bytes(make_picture(9999, (160, 120))))
    links = "".join(f'<a href="page-{n}.html">{n}</a> ' for n in range(pages))
    (root / "index.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
    for n in range(pages):
        (root / "img" / f"own-{n}.jpg").write_bytes(jpeg_bytes(make_picture(1000 + n, size)))
        body = f'<img src="img/own-{n}.jpg" alt="own {n}"><img src="img/shared.jpg" alt="shared">'
        (root / f"page-{n}.html").write_text(f"<!doctype html><html><body>{body}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    return root


def expected_counts(pages: int) -> dict[str, int]:
    """Images: one per page plus the shared one. Sightings: two per page."""
    return {"images": pages + 1, "sightings": 2 * pages}


def assert_stored_exactly_once(gallery: Path, site_url: str, *, pages: int) -> None:
    """Every image of the site stored once with all its sightings, none twice, no half-written
    rows: what a crawl that was interrupted and resumed (or lost a worker) must still leave."""
    store = Gallery(str(gallery), create=False)
    images = store.images.to_arrow().to_pylist()
    sightings = store.sightings.to_arrow().to_pylist()
    assert {"images": len(images), "sightings": len(sightings)} == expected_counts(pages)
    assert len({r["image_id"] for r in images}) == len(images)
    assert len({s["sighting_id"] for s in sightings}) == len(sightings)
    assert len({(s["image_url"], s["page_url"]) for s in sightings}) == len(sightings)
    # Every sighting points at a stored image, every image was seen somewhere.
    assert {s["image_id"] for s in sightings} == {r["image_id"] for r in images}
    assert all(r["thumbnail"] and r["phash"] and r["pdq"] for r in images)
    expected_urls = {f"{site_url}/img/own-{n}.jpg" for n in range(pages)} | {f"{site_url}/img/shared.jpg"}
    assert {s["image_url"] for s in sightings} == expected_urls
