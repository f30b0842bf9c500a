"""Hashes of fixed parts of a picture, so that a crop, a captioned copy or a picture pasted into
a page matches on the part the two share. A stored picture keeps the hashes of a few fixed
regions (the images table's `regions` column); a query is looked up whole and through a few
windows of its own. Boxes are (left, top, right, bottom) as fractions of the picture, hashed
on its small copy (indexer/hashes.py's HashInput)."""

from dataclasses import dataclass

import numpy as np
from PIL import Image

from indexer.hashes import HashInput, ImageHashes, hash_input, hashes_of

Box = tuple[float, float, float, float]
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)


def centre(fraction: float) -> Box:
    margin = (1 - fraction) / 2
    return (margin, margin, 1 - margin, 1 - margin)


# What a stored picture keeps, in this order (the `regions` column): a query that is a crop of
# it matches one of these. Symmetric crops of 10% and 20% a side meet the centre regions; the
# quarters meet a crop of one corner. benchmarks/matching.py measured which regions pay.
STORED_REGIONS: dict[str, Box] = {
    "centre_80": centre(0.8),
    "centre_60": centre(0.6),
    "top_left": (0.0, 0.0, 0.5, 0.5),
    "top_right": (0.5, 0.0, 1.0, 0.5),
    "bottom_left": (0.0, 0.5, 0.5, 1.0),
    "bottom_right": (0.5, 0.5, 1.0, 1.0),
}
STORED_REGION_WORDS = {
    "centre_80": "middle 80%",
    "centre_60": "middle 60%",
    "top_left": "top-left quarter",
    "top_right": "top-right quarter",
    "bottom_left": "bottom-left quarter",
    "bottom_right": "bottom-right quarter",
}
REGION_BYTES = 32 + 8  # PDQ then pHash, per region
REGIONS_BYTES = REGION_BYTES * len(STORED_REGIONS)

# Windows of a query looked up against the stored regions: a crop that falls between two stored
# regions (5% a side, 15%) meets one within a few percent through one of these. They are looked
# up against stored whole pictures too: a stored crop of the query (5-10% a side).
CENTRE_WINDOWS: dict[str, Box] = {f"centre_{round(f * 100)}": centre(f) for f in (0.94, 0.89, 0.84, 0.79)}

# Windows of a query looked up against stored whole pictures: the query contains the stored
# picture (a caption bar under or over it; a page it was pasted into, found by `content_box`;
# a crop of it stored: the middle 60%, a quarter).
PART_WINDOWS: dict[str, Box] = {
    **{f"top_{round(f * 100)}": (0.0, 0.0, 1.0, f) for f in (0.9, 0.85, 0.8)},
    **{f"bottom_{round(f * 100)}": (0.0, 1 - f, 1.0, 1.0) for f in (0.9, 0.85, 0.8)},
    **{name: box for name, box in STORED_REGIONS.items() if name != "centre_80"},  # centre_79 is close
}


@dataclass(frozen=True)
class Window:
    name: str  # a key of CENTRE_WINDOWS or PART_WINDOWS, or "content"
    box: Box
    hashes: ImageHashes


def region_hashes(img: Image.Image | HashInput) -> bytes:
    """The `regions` column for a decoded picture: each of STORED_REGIONS' PDQ and pHash, in
    order. A flat or blank region is left all zeros: both hashes set half their bits (they
    threshold at a median), so zeros are never within any threshold of a real hash."""
    picture = hash_input(img)
    parts = []
    for box in STORED_REGIONS.values():
        hashes = box_hashes(picture, box)
        parts.append(bytes(REGION_BYTES) if hashes.low_information else hashes.pdq + hashes.phash)
    return b"".join(parts)


def unpack_regions(values: list[bytes] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored `regions` values (bytes, or their uint8 rows) as PDQ (n, regions, 32) and pHash
    (n, regions, 8) byte arrays."""
    flat = np.frombuffer(b"".join(values), dtype=np.uint8) if isinstance(values, list) else values
    packed = flat.reshape(len(values), len(STORED_REGIONS), REGION_BYTES)
    return packed[:, :, :32], packed[:, :, 32:]


def query_windows(img: Image.Image | HashInput) -> tuple[list[Window], list[Window]]:
    """A query's centre windows (looked up against stored regions and whole pictures) and its
    part windows (against stored whole pictures), flat or blank ones left out."""
    picture = hash_input(img)
    centres = [Window(name, box, box_hashes(picture, box)) for name, box in CENTRE_WINDOWS.items()]
    parts = [Window(name, box, box_hashes(picture, box)) for name, box in PART_WINDOWS.items()]
    content = content_box(picture.small)
    if content is not None:
        parts.append(Window("content", content, box_hashes(picture, content)))
    return [w for w in centres if not w.hashes.low_information], [w for w in parts if not w.hashes.low_information]


# A pixel this far (in grey levels) from the page colour is part of the content.
PAGE_TOLERANCE = 8
# An edge row or column of the content box with less content than this is page (a line of text
# under a picture that the gap-closing joined to it), and is trimmed.
TRIM_BELOW = 0.5


def content_box(img: Image.Image) -> Box | None:
    """The box of the largest thing on a plain page (a picture pasted into a screenshot of a
    page, with its header and text apart): the page colour is the commonest one on the border.
    None when there is no page around it."""
    from scipy import ndimage

    grey = np.asarray(img.convert("L"), dtype=np.int16)
    height, width = grey.shape
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    page = int(np.bincount(border).argmax())
    content = np.abs(grey - page) > PAGE_TOLERANCE
    # Close small gaps inside the picture (pixels near the page colour); padding keeps its edges.
    closed = ndimage.binary_closing(np.pad(content, 3, mode="edge"), iterations=2)[3:-3, 3:-3]
    labels, count = ndimage.label(closed)
    if not count:
        return None
    largest = int(np.argmax(ndimage.sum(closed, labels, range(1, count + 1))))
    rows, columns = ndimage.find_objects(labels)[largest]
    top, bottom, left, right = rows.start, rows.stop, columns.start, columns.stop
    while bottom - top > 2 and content[top, left:right].mean() < TRIM_BELOW:
        top += 1
    while bottom - top > 2 and content[bottom - 1, left:right].mean() < TRIM_BELOW:
        bottom -= 1
    while right - left > 2 and content[top:bottom, left].mean() < TRIM_BELOW:
        left += 1
    while right - left > 2 and content[top:bottom, right - 1].mean() < TRIM_BELOW:
        right -= 1
    # Nearly the whole query is the whole-picture lookup's; a small box is a detail, not a picture.
    if (right - left) * (bottom - top) > 0.97 * width * height or right - left < 0.2 * width or bottom - top < 0.2 * height:
        return None
    return (left / width, top / height, right / width, bottom / height)


def box_hashes(picture: HashInput, box: Box) -> ImageHashes:
    """PDQ and pHash of one box of the picture's small copy."""
    width, height = picture.small.size
    left, top, right, bottom = box
    x0, y0 = round(left * width), round(top * height)
    x1, y1 = max(round(right * width), x0 + 1), max(round(bottom * height), y0 + 1)
    # Pillow's crop pads past the edges; the box never leaves the picture, so slices agree.
    return hashes_of(picture.small_rgb[y0:y1, x0:x1], picture.small_grey.crop((x0, y0, x1, y1)))
