"""Finding edited copies: recall per edit and false matches, today's search against the matcher.

The source set is built only from pictures installed packages ship: scikit-image's sample data,
Matplotlib's sample data, and the Debian documentation of scikit-image and scikit-learn (photos,
screenshots, plots and figures, logos), plus the Adwaita icon theme for transparent pictures
(`apt-get install python-skimage-doc python-sklearn-doc adwaita-icon-theme`; without them the
set is much smaller).
Deduplicated by content: the same pixels, a "thumb" file, or a picture today's search already
calls the same as an earlier one (PDQ <= 31) is dropped. Flat or near-blank pictures (PDQ
quality below robots_policy/match_thresholds.py's floor) are left out and counted: by design
they match by their exact bytes only.

Each edit of a source is saved as the web would serve it (JPEG, or PNG where it keeps
transparency) and searched for among all sources, through the same decode and hashing as
`gallery search`:
- baseline: search before the matcher, sha256 then the upright PDQ <= 31;
- whole pictures: indexer/matcher.py on whole pictures (PDQ or pHash, over every turn and
  mirror, both flattenings), as it was before parts;
- hashes (+ parts): the matcher with stored regions and query windows (indexer/regions.py);
- verified, hash candidates: the matcher with looser hash candidates lined up with their stored
  thumbnails (indexer/verify.py), as it was before visual words;
- matcher (+ words): the matcher as search runs it, with candidates by shared visual words
  (indexer/keypoints.py) verified too. The gallery side is what ingest stores
  (indexer/analyze.py), so those thumbnails have faces pixelated.
Crops, the quarter and the caption and page edits are also measured the other way round: the
gallery holds the edited copy and the original is searched.
A query found its source when the source is among the matches; every other source it matches is
a false match, unless the two are in one of RELATED_GROUPS (documentation figures that show the
same sample picture, checked by eye: the match is right, and is counted apart). Unrelated pairs
are (edited query, other source), plus the sources among themselves; zero false matches in n
pairs bounds the rate below 3/n (95%). Verification finds a sample picture inside documentation
figures the hashes never matched, too many pairs to check all by eye: a match between pictures
whose examples' code loads the same sample (`same_sample`) is counted apart, and its distinct
pairs are printed for a look.

Latency: the query end to end (decode, hash, candidates, verification) against an in-memory
index of 100,000 synthetic rows plus the sources, as the service holds it; and the candidate
stage alone at 1,000,000 rows: the strict lookups (whole pictures, then with regions and
windows), and every lookup search makes, verification's loose ones included, timed inside the
matcher (TimedLookups). The synthetic rows are never loose candidates, so the end-to-end figures
verify only the sources' own candidates: on a real gallery each query verifies up to
MAX_VERIFIED. Ingest: CPU per decoded image for the whole-picture hashes and for the stored
regions.

Measured (300 sources; about 17 minutes on the shared 2-core machine, two other helpers busy):
with verification on stored thumbnails, crop 5/10/20% a side 1.00/0.97/0.92 (hashes with parts:
0.92/0.85/0.81), rotate 3°/5° 0.93/0.88 (0.03/0.00), text watermark 0.90 (0.55), caption bar 0.94
(0.79), pasted into a page 0.88 (0.72), quarter 0.93 (0.88), crop + resize + JPEG 0.96, mirror +
crop 0.90 (0.65), watermark + crop 0.64 (0.39), resize 50% JPEG q30 0.98; the other way round
0.97/0.94/0.92, the quarter 0.92, a stored caption 0.08 and page 0.00; transparent stored and
searched on black 0.09. Misses are mostly no loose candidate at all (an arbitrary crop or a
watermark moves every hash further than the loose lookups reach), rarely a failed alignment.
Zero false matches in 2,339,370 unrelated pairs (rate below 1.3e-6) for all four; matches
between related sources: baseline 24, whole pictures 34, parts 249, verified 693, plus 387
between pictures of one sample by their examples' code. Regions cost about as much CPU as the
whole-picture hashes (3.6 ms against 3.3 ms an image) and 240 bytes an image; verification
stores nothing.

Latency, measured after the lookups were reworked (hash_index.py: probes as deep as the
generalized pigeonhole needs, each found row compared with its own query, wide lookups scanned
in blocks; the matcher asks the parts' strict lookups once, as the loose ones narrowed), the
2-core machine at a load of 5-8 (wall times swing; read CPU). 300 sources (34 minutes): recall
per edit within a query or two of the figures above (crop 20% 0.93, rotate 5° 0.89, watermark
0.92; ORB runs differ by that much), zero false matches in 2,339,370 pairs; query p50 at 100,300
rows, end to end, CPU: resized copies 43.8 ms verified against 28.2 ms on hashes and 2.2 ms
baseline; turned, cropped and pasted copies 56.2 ms against 37.0 ms. The candidate stage at
1,000,001 rows, CPU p50: whole pictures 2.0 ms, with regions and windows 12.7 ms, every lookup
search makes 72-75 ms. Before and after on 120 sources, two runs a few minutes apart: end to
end 74.8 -> 39.0 ms (resized) and 86.1 -> 50.6 ms (turned, cropped, pasted); whole pictures 12.7
-> 1.7 ms, with regions and windows 79.6 -> 11.2 ms; every lookup search makes 393 -> 66 ms
(interleaved with the old code in one run, the same matches for all 120 queries). Of those 66
ms the loose regions lookup (PDQ 47 over six million stored regions) is about 41, the loose
windows 15, the whole-picture scan at PDQ 96 10. Of a turned, cropped or pasted query's CPU at
100,000 rows, hashing the query is about 32 ms (its windows 14, turned copies 5, the dihedral
variants 4, decoding 4), verification 18 (the query's ORB 4, each candidate lined up about 20,
most of that the brute-force keypoint matching), the lookups 10.

Measured with visual words (indexer/keypoints.py), 120 sources, `--sources 120 --rows 20000
--big-rows 200000 --latency-queries 30`, about 20 minutes with another helper's benchmark running
beside it; hash candidates verified, then with the words' candidates too, same invocation: a
stored caption 0.10 -> 0.91 and a stored page 0.00 -> 0.78 (the original searched), rotate 5°
0.88 -> 0.94, caption bar 0.93 -> 0.97, pasted into a page 0.84 -> 0.90, mirror + crop 0.93 ->
0.96, watermark + crop 0.68 -> 0.71, stored crops 5/10% 0.94/0.93 -> 0.95/0.95, the rest equal;
transparent stored and searched on black stays 0.08 (the words find it, 23 of 25 in the top two,
but the pixel check turns it away: its flattened border disagrees). Zero false matches in 354,310
unrelated pairs for both. Query CPU p50 at 20,120 rows: 51.4 -> 58.1 ms (resized copies), 67.0 ->
78.5 ms (turned, cropped, pasted); the word vote alone 2.65 ms p50 at 200,001 rows (uniform random
synthetic words: real words are less even). Ingest: visual words 7.6 ms CPU an image against 7.0
for pHash + PDQ in the same loaded run (4.2 ms on a quiet core for a 512 px photo); 431 bytes an
image on average, 480 at most.

    .venv/bin/python benchmarks/matching.py [--sources 300] [--rows 100000] [--big-rows 1000000]

Last lines: the quarter-picture crop's recall, then `matching_min_recall: X.XX` (the lowest recall
over every other edit, for the matcher).
"""

import argparse
import hashlib
import io
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pyarrow as pa
import skimage.data
from PIL import Image, ImageDraw, ImageFont, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.analyze import query_hashes  # noqa: E402
from indexer.decode import decode_bounded  # noqa: E402
from indexer.hash_index import HammingIndex, pictures_near_regions, rows_by_words  # noqa: E402
from indexer.hashes import hamming, perceptual_hashes, sha256_hex  # noqa: E402
from indexer.keypoints import WORD_BYTES, WordIndex, stored_words  # noqa: E402
from indexer.matcher import How, QueryPicture, match, query_picture  # noqa: E402
from indexer.regions import REGIONS_BYTES, STORED_REGIONS, region_hashes, unpack_regions  # noqa: E402
from robots_policy.match_thresholds import MATCH_DISTANCE  # noqa: E402

DOC_DIRS = [
    Path("/usr/share/doc/python-skimage-doc/html/_images"),
    Path("/usr/share/doc/python-sklearn-doc/html/_images"),
]
ICON_DIR = Path("/usr/share/icons/Adwaita/512x512")
MAX_SIDE = 768  # sources are scaled down to this first: edits cost less, nothing is lost for hashing

# Sources that are not unrelated, checked by eye: documentation figures that show one of
# scikit-image's sample pictures (whole, a part, or filtered, often as an "original" panel) are
# related to that picture and to each other; two renderings of one plot that differ in an axis
# label are too. A match between them is right (the query's picture is in the other); it is
# counted apart, not as a false match.
SHOWING_SAMPLE = {
    "astronaut": ["active_contours_001", "face_detection_001", "gabors_from_astronaut_001", "inpaint_001", "rescale_001",
                  "rgb_to_gray_001", "segmentations_001", "view_as_blocks_001", "window_001"],
    "camera": ["chan_vese_001", "dog_002", "floodfill_002", "floodfill_003", "threshold_li_001", "thresholding_003",
               "tinting_grayscale_images_003", "tinting_grayscale_images_004"],
    "coins": ["coins_segmentation_009", "hysteresis_001", "image_comparison_001", "image_comparison_002", "image_comparison_003",
              "join_segmentations_001", "rank_mean_001", "template_001", "windowed_histogram_001"],
    "shepp_logan_phantom": ["morphology_002", "morphology_003", "morphology_004", "morphology_005", "morphology_006",
                            "morphology_007", "radon_transform_004"],
    "horse": ["convex_hull_001", "skeleton_001", "morphology_008", "morphology_009"],
    "retina": ["pixel_graphs_001", "pixel_graphs_003", "register_rotation_001", "register_rotation_002", "register_rotation_003"],
    "cat": ["phase_unwrap_001"],
    "text": ["active_contours_002"],
    "gravel": ["dog_001"],
    "immunohistochemistry": ["ihc_color_separation_001", "mask_slic_001"],
    "cell": ["threshold_li_003"],
    "moon": ["unsharp_mask_001"],
}
RELATED_GROUPS = [
    {f"skimage:{sample}", *(f"sphx_glr_plot_{figure}.png" for figure in figures)} for sample, figures in SHOWING_SAMPLE.items()
] + [
    {"skimage:coins", "denoise_viewer_window.png"},  # a screenshot of a viewer showing the coins
    {"skimage:cat", "numpy_images-1.png"},
    {"sklearn-metrics-DetCurveDisplay-1.png", "sklearn-metrics-DetCurveDisplay-2.png"},  # one plot, an axis label apart
    # Found by verification on pixels, checked by eye: one logo (one on a grey band); one scatter of
    # points, recoloured by two clusterings (a recoloured variant, rightly "edited").
    {"inria.png", "inria-logo.jpg"},
    {"sphx_glr_plot_agglomerative_clustering_001.png", "sphx_glr_plot_agglomerative_clustering_002.png"},
]


GROUPS_OF: dict[str, set[int]] = {}
for number, group in enumerate(RELATED_GROUPS):
    for member in group:
        GROUPS_OF.setdefault(member, set()).add(number)


def _samples_by_figure() -> dict[str, set[str]]:
    """Which of scikit-image's sample pictures each documentation figure's example loads
    (`data.coins()` in the example's code, read from its HTML page): verification on pixels finds
    a sample inside figures that the hashes never did, too many to check all by eye. Such a match
    is counted apart from false matches ("same sample"); checked by eye on a few."""
    import re

    found: dict[str, set[str]] = {}
    pages = Path("/usr/share/doc/python-skimage-doc/html/auto_examples")
    for page in pages.rglob("*.html") if pages.is_dir() else []:
        text = page.read_text(errors="replace")
        samples = set(re.findall(r'data</span><span class="o">\.</span><span class="n">(\w+)</span>', text))
        samples |= set(re.findall(r'title="skimage\.data\.(\w+)"', text))  # a call the docs link to its API page
        for figure in set(re.findall(r"(sphx_glr_plot_\w+?_\d{3}\.png)", text)):
            found.setdefault(figure, set()).update(samples)
    return found


SAMPLES_OF = _samples_by_figure()
SAMPLE_ALIASES = {"chelsea": "cat"}  # skimage.data.cat is chelsea; the deduplication kept "cat"


def related(a: str, b: str) -> bool:
    return bool(GROUPS_OF.get(Path(a).name, set()) & GROUPS_OF.get(Path(b).name, set()))


def same_sample(a: str, b: str) -> bool:
    """Both show one sample picture by their examples' code (or one is that sample)."""
    def samples(name: str) -> set[str]:
        if name.startswith("skimage:"):
            found = {name.split(":", 1)[1]}
        else:  # a figure by its example's code, or a picture RELATED_GROUPS puts with a sample
            found = set(SAMPLES_OF.get(Path(name).name, set()))
            found |= {m.split(":", 1)[1] for g in GROUPS_OF.get(Path(name).name, ()) for m in RELATED_GROUPS[g] if m.startswith("skimage:")}
        return {SAMPLE_ALIASES.get(sample, sample) for sample in found}

    return bool(samples(a) & samples(b))

# -- sources ------------------------------------------------------------------------------------


def _skimage_pictures() -> list[tuple[str, Image.Image]]:
    found = []
    for name in sorted(dir(skimage.data)):
        if name.startswith("_") or name in {"download_all", "data_dir", "file_hash", "lbp_frontal_face_cascade_filename", "cells3d", "lfw_subset", "brain", "kidney", "vortex", "stereo_motorcycle"}:
            continue
        try:
            pixels = getattr(skimage.data, name)()
        except Exception:  # a dataset that needs a download (none here): skipped
            continue
        if not isinstance(pixels, np.ndarray) or pixels.ndim not in (2, 3):
            continue
        if pixels.dtype != np.uint8:
            pixels = pixels.astype(np.float64)
            pixels = (255 * (pixels - pixels.min()) / max(1e-9, float(pixels.max() - pixels.min()))).astype(np.uint8)
        found.append((f"skimage:{name}", Image.fromarray(pixels)))
    return found


def _files() -> list[Path]:
    paths = []
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    paths += sorted(p for p in sample.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    for directory in DOC_DIRS:
        if directory.is_dir():
            paths += sorted(p for p in directory.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".gif") and "thumb" not in p.name)
    return paths


def load_sources(limit: int) -> tuple[list[tuple[str, Image.Image]], dict]:
    """Up to `limit` distinct sources (RGB), and counts of what was dropped and why."""
    from indexer.hashes import perceptual_hashes

    counts = {"candidates": 0, "same_pixels": 0, "near_duplicate": 0, "low_information": 0, "too_small": 0, "unreadable": 0}
    pictures: list[tuple[str, Image.Image]] = []
    seen, pdqs = set(), []
    candidates = _skimage_pictures() + [(str(p), p) for p in _files()]
    for name, item in candidates:
        if len(pictures) >= limit:
            break
        counts["candidates"] += 1
        try:
            img = item if isinstance(item, Image.Image) else Image.open(item)
            img = _flatten(img)
        except (OSError, ValueError):
            counts["unreadable"] += 1
            continue
        if min(img.size) < 64:
            counts["too_small"] += 1
            continue
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        digest = hashlib.sha256(img.tobytes()).digest()
        if digest in seen:
            counts["same_pixels"] += 1
            continue
        seen.add(digest)
        hashes = perceptual_hashes(img)
        if hashes.low_information:
            counts["low_information"] += 1
            continue
        if any(hamming(hashes.pdq, other) <= MATCH_DISTANCE["pdq"] for other in pdqs):
            counts["near_duplicate"] += 1
            continue
        pdqs.append(hashes.pdq)
        pictures.append((name, img))
    return pictures, counts


def _flatten(img: Image.Image, background=(255, 255, 255)) -> Image.Image:
    img.load()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


# -- edits ----------------------------------------------------------------------------------------


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def crop(img: Image.Image, fraction: float) -> Image.Image:
    w, h = img.size
    return img.crop((round(w * fraction), round(h * fraction), round(w * (1 - fraction)), round(h * (1 - fraction))))


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(10, size))


def watermark(img: Image.Image) -> Image.Image:
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = out.width // 12
    text = "© stock-photos.example"
    box = draw.textbbox((0, 0), text, font=font(size))
    x, y = (out.width - (box[2] - box[0])) // 2, (out.height - (box[3] - box[1])) // 2
    draw.text((x, y), text, font=font(size), fill=(255, 255, 255, 150), stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0, 150))
    return Image.alpha_composite(out, layer).convert("RGB")


def caption(img: Image.Image) -> Image.Image:
    bar = max(24, img.height // 6)
    out = Image.new("RGB", (img.width, img.height + bar), "white")
    out.paste(img, (0, 0))
    ImageDraw.Draw(out).text((8, img.height + bar // 4), "When you see it, you can't unsee it", font=font(bar // 2), fill="black")
    return out


def pasted(img: Image.Image) -> Image.Image:
    """The picture at 80% of a page's width, with a header and text around it (a screenshot of a page)."""
    page_w = max(400, img.width)
    inner = img.resize((int(page_w * 0.8), max(1, int(img.height * page_w * 0.8 / img.width))))
    page = Image.new("RGB", (page_w, inner.height + page_w // 3), (246, 246, 246))
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, page_w, page_w // 12), fill=(40, 60, 120))
    draw.text((page_w // 30, page_w // 60), "news.example — Photos", font=font(page_w // 30), fill="white")
    page.paste(inner, (page_w // 10, page_w // 8))
    draw.text((page_w // 10, page_w // 8 + inner.height + 8), "Readers sent us this picture yesterday.", font=font(page_w // 35), fill="black")
    return page


def rotate(img: Image.Image, degrees: float) -> Image.Image:
    return img.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(255, 255, 255))


def half(img: Image.Image) -> Image.Image:
    return img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)


def transparent(img: Image.Image) -> Image.Image:
    """The picture as a transparent PNG: an oval cut-out, the corners clear (a sticker, a logo)."""
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).ellipse((img.width * 0.05, img.height * 0.05, img.width * 0.95, img.height * 0.95), fill=255)
    out = img.convert("RGBA")
    out.putalpha(mask)
    return out


# edit name -> bytes of the edited copy (the query); the gallery holds the source.
EDITS: dict[str, Callable[[Image.Image], bytes]] = {
    "resize 50%, JPEG q30": lambda im: jpeg(half(im), 30),
    "crop 5% per side": lambda im: jpeg(crop(im, 0.05)),
    "crop 10% per side": lambda im: jpeg(crop(im, 0.10)),
    "crop 20% per side": lambda im: jpeg(crop(im, 0.20)),
    "rotate 3°": lambda im: jpeg(rotate(im, 3)),
    "rotate 5°": lambda im: jpeg(rotate(im, 5)),
    "mirror": lambda im: jpeg(ImageOps.mirror(im)),
    "rotate 90°": lambda im: jpeg(im.transpose(Image.Transpose.ROTATE_270)),
    "mirror + resize 50%, JPEG q40": lambda im: jpeg(half(ImageOps.mirror(im)), 40),
    "text watermark": lambda im: jpeg(watermark(im)),
    "caption bar": lambda im: jpeg(caption(im)),
    "grayscale": lambda im: jpeg(ImageOps.grayscale(im)),
    "pasted at 80% into a page": lambda im: png(pasted(im)),
    "crop 10% + resize 50%, JPEG q40": lambda im: jpeg(half(crop(im, 0.10)), 40),
    "mirror + crop 10%": lambda im: jpeg(crop(ImageOps.mirror(im), 0.10)),
    "watermark + crop 10%": lambda im: jpeg(crop(watermark(im), 0.10)),
}
QUARTER = "quarter of the picture (top-left)"
EDITS[QUARTER] = lambda im: jpeg(im.crop((0, 0, im.width // 2, im.height // 2)))

# Edits also measured the other way round (stored, with the original searched).
REVERSED = ["crop 5% per side", "crop 10% per side", "crop 20% per side", QUARTER, "caption bar", "pasted at 80% into a page"]

# Transparent sources: (row name, what the gallery stores, what is searched for).
TRANSPARENT = {
    "transparent PNG stored, JPEG on white searched": (lambda t: png(t), lambda t: jpeg(_flatten(t, (255, 255, 255)))),
    "transparent PNG stored, JPEG on black searched": (lambda t: png(t), lambda t: jpeg(_flatten(t, (0, 0, 0)))),
    "JPEG on white stored, transparent PNG searched": (lambda t: jpeg(_flatten(t, (255, 255, 255))), lambda t: png(t)),
    "JPEG on black stored, transparent PNG searched": (lambda t: jpeg(_flatten(t, (0, 0, 0))), lambda t: png(t)),
}


# -- the two searches --------------------------------------------------------------------------------


class ArraySource:
    """Stored hashes in memory (HammingIndex, as the service's GalleryHashIndex holds them), with
    each picture's stored regions (indexer/regions.py) indexed by their PDQ."""

    def __init__(self, ids: list[str], pdq: np.ndarray, phash: np.ndarray, sha256: list[str], regions: np.ndarray, thumbs: dict[str, bytes],
                 words: list[bytes]):
        self.ids, self.pdq, self.phash, self.regions, self.thumbs = ids, pdq, phash, regions, thumbs
        self.by_sha256 = {s: i for i, s in enumerate(sha256)}
        region_pdq = np.ascontiguousarray(unpack_regions(regions)[0].reshape(-1, 32))
        self.indexes = {"pdq": HammingIndex(pdq), "phash": HammingIndex(phash), "regions": HammingIndex(region_pdq)}
        self.table = pa.table({"image_id": ids, "pdq": [bytes(p) for p in pdq], "phash": [bytes(p) for p in phash]})
        self.words = WordIndex(words)

    def row(self, i: int) -> dict:
        return {"image_id": self.ids[i], "pdq": self.pdq[i].tobytes(), "phash": self.phash[i].tobytes(), "regions": self.regions[i].tobytes()}

    def thumbnails(self, image_ids: list[str]) -> dict[str, bytes]:
        return {i: self.thumbs[i] for i in image_ids if i in self.thumbs}

    def word_candidates(self, words: list[bytes], *, limit: int) -> list[tuple[dict, bool]]:
        return rows_by_words(self.table, self.words, words, limit=limit)

    def candidates(self, kind: str, values: list[bytes], max_distance: int) -> list[dict]:
        if kind == "sha256":
            return [self.row(self.by_sha256[v.hex()]) for v in values if v.hex() in self.by_sha256]
        if kind == "regions":
            found = pictures_near_regions(self.indexes[kind], values, max_distance=max_distance)
        else:
            found = self.indexes[kind].within_any(values, max_distance=max_distance)
        return [self.row(i) for i in found[:1000]]


class TimedLookups:
    """A hash source's lookups, their wall and CPU time added up (ms): the candidate stage as the
    matcher asks it."""

    def __init__(self, source: ArraySource):
        self.source, self.spent = source, (0.0, 0.0)

    def candidates(self, kind: str, values: list[bytes], max_distance: int) -> list[dict]:
        return self._timed(self.source.candidates, kind, values, max_distance)

    def word_candidates(self, words: list[bytes], *, limit: int) -> list[tuple[dict, bool]]:
        return self._timed(self.source.word_candidates, words, limit=limit)

    def _timed(self, lookup, *args, **kwargs):
        start, start_cpu = time.perf_counter(), time.process_time()
        rows = lookup(*args, **kwargs)
        wall, cpu = self.spent
        self.spent = (wall + (time.perf_counter() - start) * 1000, cpu + (time.process_time() - start_cpu) * 1000)
        return rows


def baseline_search(source: ArraySource, picture: QueryPicture) -> dict[str, How]:
    """Search as it was: sha256, then the upright PDQ <= 31; flat pictures by bytes only. (The
    matcher's first variant is exactly the hashes that search computed.)"""
    found = {row["image_id"]: How("exact", "sha256", 0) for row in source.candidates("sha256", [bytes.fromhex(picture.sha256)], 0)}
    if not picture.low_information:
        for row in source.candidates("pdq", [picture.hashes.pdq], MATCH_DISTANCE["pdq"]):
            found.setdefault(row["image_id"], How("resized", "pdq", 0))
    return found


def baseline_bytes(source: ArraySource, data: bytes) -> set[str]:
    """The baseline from bytes, for timing: one decode, the upright hashes only."""
    sha256, hashes = query_hashes(data)
    found = {row["image_id"] for row in source.candidates("sha256", [bytes.fromhex(sha256)], 0)}
    if not hashes.low_information:
        found |= {row["image_id"] for row in source.candidates("pdq", [hashes.pdq], MATCH_DISTANCE["pdq"])}
    return found


def whole_search(source: ArraySource, picture: QueryPicture) -> dict[str, How]:
    """The matcher on whole pictures only (as before stored regions and query windows)."""
    return {row["image_id"]: how for row, how in match(source, replace(picture, centre_windows=(), part_windows=()))}


def parts_search(source: ArraySource, picture: QueryPicture) -> dict[str, How]:
    return {row["image_id"]: how for row, how in match(source, picture)}


class HashesOnly:
    """A source's hash lookups without its visual words (indexer/keypoints.py)."""

    def __init__(self, source: ArraySource):
        self.candidates = source.candidates


def hash_verified_search(source: ArraySource, picture: QueryPicture) -> dict[str, How]:
    """Verification on stored thumbnails of hash candidates only (as before visual words)."""
    return {row["image_id"]: how for row, how in match(HashesOnly(source), picture, thumbnails=source.thumbnails)}


def verified_search(source: ArraySource, picture: QueryPicture) -> dict[str, How]:
    """The matcher as search runs it: hashes, then loose candidates (by hashes and by visual
    words) verified on stored thumbnails."""
    return {row["image_id"]: how for row, how in match(source, picture, thumbnails=source.thumbnails)}


SEARCHES = {"baseline (sha256, PDQ)": baseline_search, "whole pictures": whole_search, "hashes (+ parts)": parts_search,
            "verified, hash candidates": hash_verified_search, "matcher (+ words)": verified_search}
MATCHER = "matcher (+ words)"
SHORT = {baseline_search: "baseline", whole_search: "whole", parts_search: "parts", hash_verified_search: "verified",
         verified_search: "matcher"}


_DETECTOR = []


def stored(items: list[tuple[str, bytes]], extra: int = 0, rng: np.random.Generator | None = None) -> ArraySource:
    """What ingest stores for each item (indexer/analyze.py: hashes, regions, the thumbnail with
    faces pixelated), held in memory."""
    from indexer.analyze import analyze_image
    from indexer.faces import FaceDetector

    if not _DETECTOR:
        _DETECTOR.append(FaceDetector())
    ids, pdq, phash, sha, regions, thumbs, words = [], [], [], [], [], {}, []
    for name, data in items:
        image = analyze_image(data, detector=_DETECTOR[0])
        ids.append(name)
        sha.append(image.image_id)
        pdq.append(np.frombuffer(image.hashes.pdq, np.uint8))
        phash.append(np.frombuffer(image.hashes.phash, np.uint8))
        regions.append(np.frombuffer(image.regions, np.uint8))
        thumbs[name] = image.thumbnail
        words.append(image.words)
    pdq_a, phash_a, regions_a = np.array(pdq), np.array(phash), np.array(regions)
    if extra:
        pdq_a = np.vstack([pdq_a, rng.integers(0, 256, (extra, 32), dtype=np.uint8)])
        phash_a = np.vstack([phash_a, rng.integers(0, 256, (extra, 8), dtype=np.uint8)])
        regions_a = np.vstack([regions_a, rng.integers(0, 256, (extra, REGIONS_BYTES), dtype=np.uint8)])
        ids += [f"synthetic-{i}" for i in range(extra)]
        sha += [f"{i:064x}" for i in range(extra)]
        # Uniform random words, as many as a real picture keeps (real words are less even: a
        # few are common, which STOP_SHARE leaves out of the votes).
        per_picture = max(1, round(np.mean([len(w) for w in words]) / WORD_BYTES))
        words += list(rng.integers(0, 256, (extra, per_picture * WORD_BYTES), dtype=np.uint8))
        words = [bytes(w) for w in words]
    return ArraySource(ids, pdq_a, phash_a, sha, regions_a, thumbs, words)


FALSE_MATCHES: list[str] = []
RELATED_MATCHES: dict[str, int] = {}  # search -> its matches between related sources
SAME_SAMPLE: dict[str, list[str]] = {}  # search -> its matches between figures of one sample (by code)
FOUND_AS: dict[str, dict[str, int]] = {}  # edit -> how the matcher found its source (kind) -> count


def evaluate(source: ArraySource, queries: list[tuple[str, QueryPicture]], search, edit: str = "") -> tuple[int, int, int]:
    """(found, false matches, unrelated pairs) over queries (source name, hashed edited copy)."""
    found = false = pairs = 0
    for name, picture in queries:
        hits = search(source, picture)
        found += name in hits
        if search is verified_search and name in hits:
            kinds = FOUND_AS.setdefault(edit, {})
            kinds[hits[name].kind] = kinds.get(hits[name].kind, 0) + 1
        unrelated = {other: how for other, how in hits.items() if other != name and not related(name, other)}
        wrong = {other: how for other, how in unrelated.items() if not same_sample(name, other)}
        SAME_SAMPLE.setdefault(SHORT[search], []).extend(
            f"{edit}: {Path(name).name} ~ {Path(other).name} {how.kind} {how.agreement}" for other, how in unrelated.items() if other not in wrong)
        false += len(wrong)
        pairs += sum(other != name and not related(name, other) and not same_sample(name, other) for other in source.ids)
        FALSE_MATCHES.extend(f"{SHORT[search]} {edit}: {Path(name).name} ~ {Path(other).name}: {how.kind} {how.stored_region} {how.region} pdq {how.pdq_distance} phash {how.phash_distance} agreement {how.agreement}" for other, how in wrong.items())
        right = sum(other != name and related(name, other) for other in hits)
        RELATED_MATCHES[SHORT[search]] = RELATED_MATCHES.get(SHORT[search], 0) + right
    return found, false, pairs


def hashed(items: list[tuple[str, bytes]]) -> list[tuple[str, QueryPicture]]:
    return [(name, query_picture(data)) for name, data in items]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic gallery rows for the end-to-end latency")
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="synthetic rows for the candidate stage alone")
    parser.add_argument("--latency-queries", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(15)
    started = time.perf_counter()

    sources, counts = load_sources(args.sources)
    kinds = {}
    for name, _ in sources:
        family = name.split(":")[0] if name.startswith("skimage") else Path(name).parent.parent.parent.name if "doc" in name else "matplotlib"
        kinds[family] = kinds.get(family, 0) + 1
    print(f"sources: {len(sources)} distinct, from {counts['candidates']} looked at; dropped: "
          + ", ".join(f"{k} {v}" for k, v in counts.items() if k != "candidates" and v))
    print("  by package: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))

    originals = [(name, png(img)) for name, img in sources]
    gallery = stored(originals)
    rows = [("edit", *SEARCHES)]
    recall: dict[str, dict[str, float]] = {}
    totals = {s: [0, 0] for s in SEARCHES}  # false matches, pairs

    # The sources among themselves: every pair unrelated (deduplicated above).
    for search_name, search in SEARCHES.items():
        found, false, pairs = evaluate(gallery, hashed(originals), search, "sources")
        totals[search_name][0] += false // 2  # each unordered pair asked twice
        totals[search_name][1] += pairs // 2
        recall.setdefault("unchanged (PNG)", {})[search_name] = found / len(originals)

    def tally(shelf, queries, edit: str) -> None:
        for search_name, search in SEARCHES.items():
            found, false, pairs = evaluate(shelf, queries, search, edit)
            recall.setdefault(edit, {})[search_name] = found / len(queries)
            totals[search_name][0] += false
            totals[search_name][1] += pairs

    for edit, make in EDITS.items():
        tally(gallery, hashed([(name, make(img)) for name, img in sources]), edit)

    # The other way round: the gallery holds the edited copy, the original is searched (a takedown
    # filed with the original; "where does my photo appear?").
    searched = hashed(originals)
    for edit in REVERSED:
        tally(stored([(name, EDITS[edit](img)) for name, img in sources]), searched, f"{edit}: stored, original searched")

    cutouts = [(name, transparent(img)) for name, img in sources]
    for edit, (keep, ask) in TRANSPARENT.items():
        tally(stored([(name, keep(t)) for name, t in cutouts]), hashed([(name, ask(t)) for name, t in cutouts]), edit)

    width = max(len(e) for e in recall) + 2
    print(f"\nrecall per edit ({len(sources)} sources each); how the matcher found them")
    print(f"{'edit':<{width}}" + "".join(f"{s:>24}" for s in SEARCHES) + "   found as")
    for edit, by_search in recall.items():
        found_as = ", ".join(f"{k} {v}" for k, v in sorted(FOUND_AS.get(edit, {}).items(), key=lambda kv: -kv[1]))
        print(f"{edit:<{width}}" + "".join(f"{by_search[s]:>24.2f}" for s in SEARCHES) + f"   {found_as}")
    print("\nfalse matches on unrelated pairs (pairs within RELATED_GROUPS left out)")
    for search_name, (false, pairs) in totals.items():
        bound = f"rate < {3 / pairs:.1e} (95%)" if false == 0 else f"rate {false / pairs:.1e}"
        print(f"  {search_name:<24} {false} in {pairs:,} pairs, {bound}")
    for line in FALSE_MATCHES:
        print(f"    {line}")
    print("  matches within RELATED_GROUPS (right, not counted): " + ", ".join(f"{k} {v}" for k, v in RELATED_MATCHES.items()))
    print("  matches between pictures of one sample by their examples' code (not counted): "
          + ", ".join(f"{k} {len(v)}" for k, v in SAME_SAMPLE.items()))
    # The distinct pairs among them, for a look by eye.
    pairs = sorted({" ~ ".join(sorted(line.rsplit(" ", 2)[0].rsplit(": ", 1)[1].split(" ~ "))) for line in SAME_SAMPLE.get("matcher", [])})
    print(f"    {len(pairs)} distinct pairs: " + "; ".join(pairs))

    # -- latency ------------------------------------------------------------------------------------
    big = stored(originals, extra=args.rows, rng=rng)
    queries = [EDITS["resize 50%, JPEG q30"](img) for _, img in sources[: args.latency_queries]]
    # Edited copies the hashes alone miss, cycled over the sources: verification's own cost.
    hard_edits = ["rotate 5°", "watermark + crop 10%", "crop 20% per side", "pasted at 80% into a page"]
    hard = [EDITS[hard_edits[i % len(hard_edits)]](img) for i, (_, img) in enumerate(sources[: args.latency_queries])]
    print(f"\nquery latency, end to end (decode, hash, candidates, verify), {len(big.ids):,} rows in memory; CPU per query")
    timings = {}
    end_to_end = {
        "baseline (sha256, PDQ)": lambda data: baseline_bytes(big, data),
        "hashes (+ parts)": lambda data: parts_search(big, query_picture(data)),
        "verified, hash candidates": lambda data: hash_verified_search(big, query_picture(data)),
        MATCHER: lambda data: verified_search(big, query_picture(data)),
    }
    for label, batch in (("resized copies", queries), ("rotated, cropped, pasted copies", hard)):
        print(f"  {label}")
        for search_name, search in end_to_end.items():
            spent, cpu = [], []
            for data in batch:
                start, start_cpu = time.perf_counter(), time.process_time()
                search(data)
                spent.append((time.perf_counter() - start) * 1000)
                cpu.append((time.process_time() - start_cpu) * 1000)
            timings[label, search_name] = statistics.median(spent)
            print(f"    {search_name:<24} p50 {timings[label, search_name]:6.1f} ms  p95 {percentile(spent, 95):6.1f} ms"
                  f"  p99 {percentile(spent, 99):6.1f} ms  CPU p50 {statistics.median(cpu):6.1f} ms")
        print(f"    ratio matcher / baseline: {timings[label, MATCHER] / timings[label, 'baseline (sha256, PDQ)']:.2f}")

    huge = stored(originals[:1], extra=args.big_rows, rng=rng)
    pictures = [query_picture(data) for data in queries[:50]]
    spent: dict[str, list[tuple[float, float]]] = {}  # lookup -> (wall, CPU) ms per query

    def clock(name: str, work: Callable[[], object]) -> None:
        start, start_cpu = time.perf_counter(), time.process_time()
        work()
        spent.setdefault(name, []).append(((time.perf_counter() - start) * 1000, (time.process_time() - start_cpu) * 1000))

    for picture in pictures:
        clock("baseline (1 PDQ lookup)", lambda: huge.indexes["pdq"].within_any([picture.hashes.pdq], max_distance=MATCH_DISTANCE["pdq"]))
        clock("variants x 2 hashes", lambda: (
            huge.indexes["pdq"].within_any([v.hashes.pdq for v in picture.variants], max_distance=MATCH_DISTANCE["pdq"]),
            huge.indexes["phash"].within_any([v.hashes.phash for v in picture.variants], max_distance=MATCH_DISTANCE["phash"])))
        wanted = [v.hashes.pdq for v in picture.variants] + [w.hashes.pdq for w in picture.centre_windows]
        clock("+ regions and windows", lambda: (
            huge.indexes["pdq"].within_any([v.hashes.pdq for v in picture.variants], max_distance=MATCH_DISTANCE["pdq"]),
            huge.indexes["phash"].within_any([v.hashes.phash for v in picture.variants], max_distance=MATCH_DISTANCE["phash"]),
            huge.indexes["regions"].within_any(wanted, max_distance=MATCH_DISTANCE["pdq"]),
            huge.indexes["pdq"].within_any([w.hashes.pdq for w in picture.part_windows], max_distance=MATCH_DISTANCE["pdq"])))
        clock("visual words alone", lambda: huge.word_candidates(list(picture.words), limit=20))
    # Every lookup the matcher makes as search runs it (the strict ones and verification's loose
    # ones), timed inside match(); the synthetic rows are never close enough to be verified.
    for label, batch in (("resized", queries[:50]), ("rotated, cropped, pasted", hard[:50])):
        for data in batch:
            timed = TimedLookups(huge)
            match(timed, query_picture(data), thumbnails=huge.thumbnails)
            spent.setdefault(f"all lookups of search, {label}", []).append(timed.spent)
    print(f"\ncandidate stage alone, {len(huge.ids):,} rows ({len(huge.ids) * len(STORED_REGIONS):,} stored regions)")
    for name, values in spent.items():
        wall, cpu = [w for w, _ in values], [c for _, c in values]
        print(f"  {name:<44} p50 {statistics.median(wall):6.2f} ms  p99 {percentile(wall, 99):6.2f} ms  CPU p50 {statistics.median(cpu):6.2f} ms")
    images = [decode_bounded(data).image for _, data in originals[:100]]
    costs = {}
    for name, work in (("pHash + PDQ (whole picture)", perceptual_hashes), ("stored regions", region_hashes), ("visual words", stored_words)):
        start = time.perf_counter()
        for img in images:
            work(img)
        costs[name] = (time.perf_counter() - start) * 1000 / len(images)
    print("\ningest cost per image (decoded), CPU ms: " + ", ".join(f"{k} {v:.2f}" for k, v in costs.items())
          + f"; regions / whole {costs['stored regions'] / costs['pHash + PDQ (whole picture)']:.2f}")
    print(f"bytes stored per image, added: {REGIONS_BYTES} (the regions column: {len(STORED_REGIONS)} regions x PDQ 32 + pHash 8)")
    sizes = [len(stored_words(img)) for img in images]
    print(f"visual words per image: {statistics.mean(sizes):.0f} bytes mean, {max(sizes)} most ({WORD_BYTES} bytes a word)")
    print(f"benchmark took {time.perf_counter() - started:.0f} s")

    print(f"\nquarter_crop_recall: {recall[QUARTER][MATCHER]:.2f} (baseline {recall[QUARTER]['baseline (sha256, PDQ)']:.2f})")
    others = {e: r[MATCHER] for e, r in recall.items() if e != QUARTER}
    print(f"matching_min_recall: {min(others.values()):.2f}")


if __name__ == "__main__":
    main()
