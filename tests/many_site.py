"""A bigger fixture site for resume and multi-worker tests: many pages, one image of its own on
each, and one image shared by every page (so repeat sightings cross a restart or a worker)."""

from pathlib import Path

from gallery.demo import make_picture
from tests.fixture_site import jpeg_bytes


def build_many_site(root: Path, *, pages: int) -> Path:
    root = Path(root)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "img" / "shared.jpg").write_bytes(jpeg_bytes(make_picture(9999, (160, 120))))
    links = "".join(f'<a href="page-{n}.html">{n}</a> ' for n in range(pages))
    (root / "index.html").write_text(f"<!doctype html><html><body>{links}</body></html>")
    for n in range(pages):
        (root / "img" / f"own-{n}.jpg").write_bytes(jpeg_bytes(make_picture(1000 + n, (160, 120))))
        body = f'<img src="img/own-{n}.jpg" alt="own {n}"><img src="img/shared.jpg" alt="shared">'
        (root / f"page-{n}.html").write_text(f"<!doctype html><html><body>{body}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    return root


def expected_counts(pages: int) -> dict[str, int]:
    """Images: one per page plus the shared one. Sightings: two per page."""
    return {"images": pages + 1, "sightings": 2 * pages}
