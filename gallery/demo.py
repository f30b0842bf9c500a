"""The bundled demo site: a few linked pages of generated pictures, written on demand."""

from pathlib import Path

import numpy as np
from PIL import Image


def make_picture(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A colourful, deterministic picture; different seeds look different to pHash and PDQ.

    Three octaves of smooth noise: with only the coarsest, PDQ (which keys on mid
    frequencies) flipped ~50 of 256 bits under a plain resize.
    """
    rng = np.random.default_rng(seed)
    total = np.zeros((size[1], size[0], 3))
    weights = {4: 1.0, 12: 0.6, 36: 0.35}  # grid cells across -> weight
    for cells, weight in weights.items():
        coarse = rng.integers(0, 256, (cells * 3 // 4 + 1, cells, 3), dtype=np.uint8)
        total += weight * np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), dtype=float)
    return Image.fromarray(np.clip(total / sum(weights.values()), 0, 255).astype(np.uint8))


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>\n"


def build_demo_site(root: Path) -> Path:
    """Write the demo site under `root`: 3 public pages, 1 robots-disallowed folder, 7 pictures,
    one of them published twice (same bytes, two URLs, two pages)."""
    root = Path(root)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "private").mkdir(exist_ok=True)
    for seed in range(1, 6):
        make_picture(seed).save(root / "img" / f"photo{seed}.jpg", quality=90)
    make_picture(6).save(root / "img" / "diagram.png")
    # The same bytes under a second name: an exact duplicate, stored once, seen twice.
    (root / "img" / "photo1-copy.jpg").write_bytes((root / "img" / "photo1.jpg").read_bytes())
    make_picture(7).save(root / "private" / "hidden.jpg")

    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    (root / "index.html").write_text(
        _page(
            "Demo gallery",
            '<img src="img/photo1.jpg" alt="First photo">'
            '<p><a href="landscapes.html">Landscapes</a> <a href="diagrams.html">Diagrams</a> '
            '<a href="private/index.html">Private</a></p>',
        )
    )
    (root / "landscapes.html").write_text(
        _page(
            "Landscapes",
            '<img src="img/photo2.jpg" alt="Hills">'
            '<img srcset="img/photo3.jpg 480w" alt="Lake">'
            '<picture><source srcset="img/photo4.jpg"><img src="img/photo4.jpg" alt="Forest"></picture>'
            '<p><a href="index.html">Home</a></p>',
        )
    )
    (root / "diagrams.html").write_text(
        _page(
            "Diagrams",
            '<img data-src="img/diagram.png" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="Diagram">'
            '<img src="img/photo5.jpg" alt="Sky"><img src="img/photo1-copy.jpg" alt="First photo again">'
            '<p><a href="index.html">Home</a></p>',
        )
    )
    (root / "private" / "index.html").write_text(_page("Private", '<img src="hidden.jpg" alt="Hidden">'))
    return root
