"""The matcher's verification stage on stored thumbnails: is a loose hash candidate really the
query picture, or a part of it, or does it contain it? Keypoints (ORB) matched between the query
and the candidate's stored thumbnail, a similarity transform fitted by RANSAC within sane limits,
then a pixel check of the aligned overlap: the gradients of the two must point the same way in
most small cells, so a transform that happens to line up text, UI chrome or a plot's grid (which
keypoints alone can) does not pass. Stores nothing: the thumbnail (faces pixelated) is already
in the gallery; counting agreeing cells, not requiring all, tolerates the pixelated faces and a
watermark."""

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from indexer.hashes import hamming, perceptual_hashes
from indexer.regions import Box

# Both pictures are scaled to this longest side first (a small one up: keypoints need room), with
# this many keypoints each: enough to find a quarter's share of a thumbnail.
SIDE = 400
FEATURES = 2000
# Thinner pictures (scaled to SIDE) have no keypoints: ORB leaves out its 31 px border.
MIN_FEATURE_SIDE = 32
# Lowe's ratio test: a keypoint match counts when clearly better than the second best.
RATIO = 0.85
# RANSAC: a keypoint agrees with the transform within this many pixels (of the stored thumbnail).
REPROJECTION_PIXELS = 4.0
MIN_INLIERS = 12
# The transform's sane limits: a copy scaled at most this much either way, turned at most this far
# (quarter turns and mirrors are the hash variants' job; the mirror is tried here too).
MAX_SCALE = 6.0
MAX_ANGLE = 20.0
# The inliers must spread over this share of the overlap's width or height (not one small logo; the
# pixel check looks at the rest).
MIN_SPREAD = 0.3
# One side covered: a crop ("contains"), or the stored picture inside a larger query ("crop");
# both nearly whole: the whole picture. Less than COVERED on both sides is a shared part (a toolbar
# two screenshots share), not a match.
COVERED = 0.8
WHOLE = 0.9
# The pixel check: the overlap at this longest side, cut into cells this many pixels a side.
CHECK_SIDE = 128
CELL = 16
# A cell with less gradient energy than this (mean squared, 0-255 grey) is flat in that picture.
FLAT_CELL = 4.0
MIN_CELLS = 8
# A cell agrees when the gradients' cosine similarity is at least CELL_AGREES; the pictures agree
# when at least MIN_AGREEMENT of the textured cells do (a pixelated face or a watermark spoils a few).
CELL_AGREES = 0.5
MIN_AGREEMENT = 0.7
# Last, the two overlaps (the query turned back and cut to it, and the stored picture's) hashed
# again: a true copy is then the same picture to PDQ, about a resize's distance (a watermark adds
# most), while two figures of one layout, whose axes and labels the cells found agreeing, stay as far
# apart as their whole pictures were. benchmarks/matching.py measured both sides.
MAX_ALIGNED_PDQ = 70
# A whole-picture match turned less than this is "edited", more "rotated".
TURNED_DEGREES = 1.5


@dataclass(frozen=True)
class Alignment:
    """How a stored thumbnail lines up with the query."""

    kind: str  # "edited", "rotated", "mirrored" (whole pictures), "crop" or "contains" (parts)
    mirrored: bool
    angle: float  # degrees the query is turned from the stored picture, anticlockwise
    scale: float  # stored thumbnail pixels per query pixel
    inliers: int
    agreement: float  # the pixel check: the share of textured cells that agree
    region: Box  # the part of the query that matched, fractions


@dataclass(frozen=True)
class Features:
    points: np.ndarray  # (n, 2) float32 keypoint positions
    descriptors: np.ndarray | None  # (n, 32) uint8, None when there are no keypoints


class QueryFeatures:
    """A query's grey pixels and its keypoints, upright and (when first asked) mirrored: computed
    once per query, whatever the number of candidates."""

    def __init__(self, grey: np.ndarray):
        self.grey = scaled(grey)
        self.upright = features(self.grey)
        self._mirrored: Features | None = None

    @property
    def mirrored(self) -> Features:
        if self._mirrored is None:
            self._mirrored = features(np.ascontiguousarray(self.grey[:, ::-1]))
        return self._mirrored


def features(grey: np.ndarray) -> Features:
    if min(grey.shape) < MIN_FEATURE_SIDE:
        return Features(np.empty((0, 2), np.float32), None)  # a strip: ORB's pyramid fails on it
    # A detector per call: it costs microseconds, and one shared by the service's threads is not safe.
    keypoints, descriptors = cv2.ORB_create(nfeatures=FEATURES).detectAndCompute(grey, None)
    return Features(np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2), descriptors)


def can_align(grey: np.ndarray) -> bool:
    """Whether a picture has the keypoints an alignment needs; a logo or flat graphic may not, and
    then only its hashes can find its copies."""
    return len(features(scaled(grey)).points) >= MIN_INLIERS


def decode_thumbnail(data: bytes) -> np.ndarray | None:
    """A stored thumbnail as grey pixels; None when it cannot be read or is too small to check
    (that candidate is then left unverified: no match)."""
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    return scaled(grey) if grey is not None and min(grey.shape) >= CELL else None


def scaled(grey: np.ndarray) -> np.ndarray:
    height, width = grey.shape
    factor = SIDE / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def align(query: QueryFeatures, stored: np.ndarray, *, mirrored: bool = False) -> Alignment | None:
    """The query (or its mirror image) lined up with one stored thumbnail, or None."""
    theirs = features(stored)
    if theirs.descriptors is None or len(theirs.points) < MIN_INLIERS:
        return None
    grey = np.ascontiguousarray(query.grey[:, ::-1]) if mirrored else query.grey
    return _align_one(grey, query.mirrored if mirrored else query.upright, stored, theirs, mirrored)


def _align_one(grey: np.ndarray, mine: Features, stored: np.ndarray, theirs: Features, mirrored: bool) -> Alignment | None:
    if mine.descriptors is None or len(mine.points) < MIN_INLIERS:
        return None
    pairs = [m[0] for m in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(mine.descriptors, theirs.descriptors, k=2) if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(pairs) < MIN_INLIERS:
        return None
    source = mine.points[[m.queryIdx for m in pairs]]
    target = theirs.points[[m.trainIdx for m in pairs]]
    transform, inliers = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION_PIXELS, maxIters=2000, confidence=0.995
    )
    if transform is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    # How far the query is turned from the stored picture, anticlockwise as it is seen (y runs down).
    angle = float(np.degrees(np.arctan2(transform[1, 0], transform[0, 0])))
    if not (1 / MAX_SCALE <= scale <= MAX_SCALE) or abs(angle) > MAX_ANGLE:
        return None
    height, width = stored.shape
    warped = cv2.warpAffine(grey, transform, (width, height), flags=cv2.INTER_LINEAR)
    # Inside the query, a pixel's margin away from its edges (interpolation smears the border).
    inside = cv2.warpAffine(np.full(grey.shape, 255, np.uint8), transform, (width, height), flags=cv2.INTER_NEAREST)
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0
    overlap = int(inside.sum())
    if not overlap:
        return None
    stored_share = overlap / (width * height)
    query_share = overlap / (scale * scale * grey.shape[0] * grey.shape[1])
    if max(stored_share, query_share) < COVERED:
        return None
    ys, xs = np.nonzero(inside)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    kept = target[inliers.ravel() > 0]
    if np.ptp(kept[:, 0]) < MIN_SPREAD * (right - left) and np.ptp(kept[:, 1]) < MIN_SPREAD * (bottom - top):
        return None
    window = (slice(top, bottom), slice(left, right))
    agreement = _agreement(warped[window], stored[window], inside[window])
    if agreement < MIN_AGREEMENT:
        return None
    if _aligned_pdq(warped[window], stored[window], inside[window]) > MAX_ALIGNED_PDQ:
        return None
    if stored_share >= WHOLE and query_share >= WHOLE:
        # Unturned and whole, yet the hashes missed it: text, marks or colours were changed.
        kind = "mirrored" if mirrored else "rotated" if abs(angle) > TURNED_DEGREES else "edited"
    else:
        kind = "contains" if query_share >= COVERED else "crop"
    return Alignment(kind, mirrored, angle, scale, int(inliers.sum()), agreement, _query_box(transform, grey.shape, (top, bottom, left, right), mirrored))


def _agreement(query: np.ndarray, stored: np.ndarray, inside: np.ndarray) -> float:
    """The share of cells, of those textured in either picture, where the two pictures' gradients
    point the same way (cosine similarity at least CELL_AGREES; a cell flat in one picture and
    textured in the other disagrees); 0 when too few cells are textured to say."""
    scores = cell_similarities(query, stored, inside)
    return float((scores >= CELL_AGREES).mean()) if len(scores) >= MIN_CELLS else 0.0


def cell_similarities(query: np.ndarray, stored: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per cell of the overlap (scaled to CHECK_SIDE), the cosine similarity of the two pictures'
    gradients; cells flat in both are left out, cells flat in one score 0."""
    height, width = query.shape
    factor = CHECK_SIDE / max(height, width)
    size = (max(CELL, round(width * factor)), max(CELL, round(height * factor)))
    q, s = (cv2.GaussianBlur(cv2.resize(p, size, interpolation=cv2.INTER_AREA).astype(np.float32), (3, 3), 0) for p in (query, stored))
    mask = cv2.resize(inside.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    rows, columns = size[1] // CELL, size[0] // CELL
    cut = (slice(0, rows * CELL), slice(0, columns * CELL))

    def cells(values: np.ndarray) -> np.ndarray:  # (rows, columns, CELL * CELL)
        return values[cut].reshape(rows, CELL, columns, CELL).swapaxes(1, 2).reshape(rows, columns, -1)

    qx, qy = cells(cv2.Sobel(q, cv2.CV_32F, 1, 0)), cells(cv2.Sobel(q, cv2.CV_32F, 0, 1))
    sx, sy = cells(cv2.Sobel(s, cv2.CV_32F, 1, 0)), cells(cv2.Sobel(s, cv2.CV_32F, 0, 1))
    energy_q, energy_s = (qx * qx + qy * qy).mean(axis=2), (sx * sx + sy * sy).mean(axis=2)
    cosine = (qx * sx + qy * sy).mean(axis=2) / np.sqrt(np.maximum(energy_q * energy_s, 1e-9))
    textured_q, textured_s = energy_q >= FLAT_CELL, energy_s >= FLAT_CELL
    scores = np.where(textured_q & textured_s, cosine, 0.0)
    keep = cells(mask).all(axis=2) & (textured_q | textured_s)
    return scores[keep]


def _aligned_pdq(query: np.ndarray, stored: np.ndarray, inside: np.ndarray) -> int:
    """PDQ distance between the two overlaps, outside the overlap blacked out in both."""
    mine, theirs = (perceptual_hashes(Image.fromarray(np.where(inside, p, 0).astype(np.uint8)).convert("RGB")) for p in (query, stored))
    return hamming(mine.pdq, theirs.pdq)


def _query_box(transform: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int], mirrored: bool) -> Box:
    """The overlap's box (in the stored picture) carried back into the query, as fractions."""
    top, bottom, left, right = box
    inverse = cv2.invertAffineTransform(transform)
    corners = np.array([[left, top, 1], [right, top, 1], [left, bottom, 1], [right, bottom, 1]], np.float32) @ inverse.T
    height, width = shape
    x0, x1 = np.clip([corners[:, 0].min() / width, corners[:, 0].max() / width], 0, 1)
    y0, y1 = np.clip([corners[:, 1].min() / height, corners[:, 1].max() / height], 0, 1)
    if mirrored:
        x0, x1 = 1 - x1, 1 - x0
    return (float(x0), float(y0), float(x1), float(y1))

