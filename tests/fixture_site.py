"""The test fixture site: one page per image form, bad images, faces, duplicates."""

import io
import os
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import matplotlib.cbook
import skimage.data
from PIL import Image

from gallery.demo import make_picture
from indexer.analyze import AnalyzedImage
from indexer.hashes import ImageHashes
from indexer.ingest import Sighting


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def sighting(image_url: str, page_url: str = "http://a.test/") -> Sighting:
    """A sighting as the pipeline would make it, for tests and benchmarks that write directly."""
    return Sighting(
        image_url=image_url,
        page_url=page_url,
        domain=urlsplit(page_url).hostname,
        alt_text=None,
        license_url=None,
        fetched_at=datetime.now(timezone.utc),
        http_status=200,
        rendered=False,
        policy="test",
    )


def random_image() -> AnalyzedImage:
    """An analyzed image with random hashes, for tests that need rows fast rather than pixels."""
    return AnalyzedImage(
        image_id=os.urandom(32).hex(),
        hashes=ImageHashes(phash=os.urandom(8), pdq=os.urandom(32)),
        regions=None,  # not computed, as in a gallery made before them
        width=1,
        height=1,
        format="JPEG",
        bytes=1,
        face_count=0,
        thumbnail=b"",
        policy="test",
    )


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring 10 gigapixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def scan_bomb(scans: int = 2000, size: tuple[int, int] = (2000, 2000)) -> bytes:
    """A valid progressive JPEG whose last refinement scan is repeated `scans` times before EOI:
    on a flat picture that scan is 14 bytes, and each copy is one more pass over every block."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    last_scan = data[data.rfind(b"\xff\xda") : -2]  # up to EOI
    return data[:-2] + last_scan * scans + data[-2:]


def astronaut() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut())


def grace_hopper() -> Image.Image:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return Image.open(io.BytesIO(f.read())).convert("RGB")


# Which image file each extraction form points at: the e2e tests assert each one landed.
FORMS = {
    "img_src": "img/src.jpg",
    "srcset_largest": "img/srcset-large.jpg",
    "picture_source": "img/picture.jpg",
    "data_src": "img/lazy.jpg",
    "data_srcset": "img/lazy-set-large.jpg",
    "og_image": "img/og.jpg",
    "base_href": "assets/based.jpg",
}
NOT_PAGES = ("/docs/manual.pdf", "/downloads/data.zip", "/notebooks/demo.ipynb", "/media/clip.MP4")
BAD_IMAGES = {
    "bomb.png": "too_many_pixels",
    "scan-bomb.jpg": "too_many_scans",
    "truncated.jpg": "corrupt",
    "empty.jpg": "empty",
    "html.jpg": "not_an_image",
    "spacer.gif": "too_small",
}


def build_fixture_site(root: Path) -> Path:
    root = Path(root)
    for folder in ("img", "assets", "private", "bad", "faces"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for seed, path in enumerate(FORMS.values(), start=100):
        (root / path).write_bytes(jpeg_bytes(make_picture(seed)))
    (root / "img" / "srcset-small.jpg").write_bytes(jpeg_bytes(make_picture(200, (120, 90))))
    (root / "img" / "lazy-set-small.jpg").write_bytes(jpeg_bytes(make_picture(201, (120, 90))))
    (root / "img" / "dupe-a.jpg").write_bytes(jpeg_bytes(make_picture(300)))
    (root / "img" / "dupe-b.jpg").write_bytes((root / "img" / "dupe-a.jpg").read_bytes())
    (root / "private" / "secret.jpg").write_bytes(jpeg_bytes(make_picture(400)))
    (root / "faces" / "astronaut.jpg").write_bytes(jpeg_bytes(astronaut()))
    (root / "faces" / "grace_hopper.jpg").write_bytes(jpeg_bytes(grace_hopper()))

    good = jpeg_bytes(make_picture(500))
    (root / "bad" / "bomb.png").write_bytes(png_bomb())
    (root / "bad" / "scan-bomb.jpg").write_bytes(scan_bomb())
    (root / "bad" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "bad" / "empty.jpg").write_bytes(b"")
    (root / "bad" / "html.jpg").write_bytes(b"<!doctype html><html><body>not a picture</body></html>")
    Image.new("P", (1, 1)).save(root / "bad" / "spacer.gif", transparency=0)  # a layout spacer

    pages = {
        "index.html": '<a href="forms.html">forms</a> <a href="base.html">base</a> <a href="dupes.html">dupes</a> '
        '<a href="bad.html">bad</a> <a href="faces.html">faces</a> <a href="private/page.html">private</a> '
        # Not pages: never requested (crawler/extract.py NOT_PAGE_EXTENSIONS).
        '<a href="docs/manual.pdf">pdf</a> <a href="downloads/data.zip">zip</a> '
        '<a href="notebooks/demo.ipynb">notebook</a> <a href="media/clip.MP4">video</a> '
        # Requested, and counted in the summary: a page that is gone (404), a link that is not HTML.
        '<a href="gone.html">gone</a> <a href="notes.txt">notes</a>',
        "forms.html": '<meta property="og:image" content="/img/og.jpg">'
        '<img src="img/src.jpg" alt="plain">'
        '<img srcset="img/srcset-small.jpg 120w, img/srcset-large.jpg 480w" src="img/srcset-small.jpg" alt="set">'
        '<picture><source srcset="img/picture.jpg 2x"><img src="data:image/gif;base64,R0lGOD" alt="pic"></picture>'
        '<img class="lazy" src="data:image/gif;base64,R0lGOD" data-src="img/lazy.jpg" alt="lazy">'
        '<img data-srcset="img/lazy-set-small.jpg 1x, img/lazy-set-large.jpg 2x" alt="lazyset">'
        '<link rel="license" href="https://creativecommons.org/licenses/by/4.0/">',
        "base.html": '<base href="/assets/"><img src="based.jpg" alt="based">',
        "dupes.html": '<img src="img/dupe-a.jpg" alt="a"><img src="img/dupe-b.jpg" alt="b">',
        "dupes2.html": '<img src="img/dupe-a.jpg" alt="a again">',
        "bad.html": "".join(f'<img src="bad/{name}">' for name in BAD_IMAGES),
        "faces.html": '<img src="faces/astronaut.jpg" alt="astronaut"><img src="faces/grace_hopper.jpg" alt="hopper">',
        "private/page.html": '<img src="secret.jpg">',
    }
    pages["dupes.html"] += '<a href="dupes2.html">more</a>'
    for name, body in pages.items():
        (root / name).write_text(f"<!doctype html><html><body>{body}</body></html>")
    (root / "notes.txt").write_text("plain text, not a page\n")
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    return root
