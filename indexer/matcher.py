"""The one matcher: which stored pictures are the query picture, and how each matched.

Search (CLI, HTTP, web page), removal by image and near-duplicate marking all ask it. Two
stages: candidates from a hash source (whatever index the caller holds: the service's
in-memory index, a removal's tables, the writer's near-duplicate index, a LanceDB scan),
looked up with the query's pHash and PDQ turned and mirrored every way (and, for a picture
with transparency, flattened onto white and onto black); then verification of each candidate
on both stored hashes against every variant, by the rule in robots_policy/match_thresholds.py.
Nothing beyond the pHash and PDQ the gallery already keeps is needed per stored image.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from indexer.decode import BLACK, DecodeLimits, decode_bounded
from indexer.hashes import ImageHashes, dihedral_hashes, sha256_hex
from robots_policy.match_thresholds import MATCH_DISTANCE, both_agree, same_picture

# How a stored copy relates to the query, by the variant that matched.
KIND_OF_TRANSFORM = {
    "identity": "resized",
    "rotate_90": "rotated",
    "rotate_180": "rotated",
    "rotate_270": "rotated",
    "flip_top_bottom": "mirrored",
    "flip_left_right": "mirrored",
    "transpose": "mirrored",
    "transverse": "mirrored",
}
TRANSFORM_WORDS = {
    "rotate_90": "turned 90° anticlockwise",
    "rotate_180": "turned upside down (180°)",
    "rotate_270": "turned 90° clockwise",
    "flip_top_bottom": "flipped top to bottom",
    "flip_left_right": "mirrored left to right",
    "transpose": "mirrored across its diagonal",
    "transverse": "mirrored across its other diagonal",
}
# Candidates verified per query, at most: a query's cost stays bounded on any gallery.
MAX_CANDIDATES = 2000


@dataclass(frozen=True)
class Variant:
    transform: str  # a key of indexer.hashes.DIHEDRAL
    background: str  # "white" (also for opaque pictures) or "black": what transparency was flattened onto
    hashes: ImageHashes


@dataclass(frozen=True)
class QueryPicture:
    """A query's exact bytes and its hash variants; the first variant is what the gallery
    would store for this file (upright, transparency on white)."""

    sha256: str
    variants: tuple[Variant, ...]

    @property
    def hashes(self) -> ImageHashes:
        return self.variants[0].hashes

    @property
    def low_information(self) -> bool:
        """Flat or blank: matched by its exact bytes only (see ImageHashes.low_information)."""
        return self.hashes.low_information


def query_picture(data: bytes, limits: DecodeLimits = DecodeLimits()) -> QueryPicture:
    """Decode a query once (twice if it has transparency) and hash every variant."""
    decoded = decode_bounded(data, limits)
    variants = [Variant(t, "white", h) for t, h in dihedral_hashes(decoded.image).items()]
    if decoded.has_alpha:
        # A JPEG copy of a transparent picture has it flattened onto something: often black.
        on_black = decode_bounded(data, limits, background=BLACK).image
        variants += [Variant(t, "black", h) for t, h in dihedral_hashes(on_black).items()]
    unique = {}
    for variant in variants:  # a symmetric or opaque picture repeats hashes: look each up once
        unique.setdefault((variant.hashes.pdq, variant.hashes.phash), variant)
    return QueryPicture(sha256_hex(data), tuple(unique.values()))


@dataclass(frozen=True)
class How:
    """How a stored picture matched: what a person reads, and what a deletion may rely on."""

    kind: str  # "exact" (same file), "resized" (same picture, resized or recompressed), "mirrored", "rotated"
    hash: str  # the hash that decided: sha256, pdq or phash
    distance: int  # Hamming distance on that hash (0 for sha256)
    transform: str = "identity"  # which turn or mirror of the query matched (indexer.hashes.DIHEDRAL)
    background: str = "white"  # the query's transparency flattened onto this
    pdq_distance: int | None = None
    phash_distance: int | None = None

    @property
    def confident(self) -> bool:
        """Exact bytes, or both hashes within threshold: enough to delete or to block a crawl."""
        if self.kind == "exact":
            return True
        if self.pdq_distance is None or self.phash_distance is None:
            return False
        return bool(both_agree(self.pdq_distance, self.phash_distance))

    @property
    def label(self) -> str:
        if self.kind == "exact":
            words = "exact file"
        elif self.kind == "resized":
            words = "same picture" if self.distance == 0 else "same picture, resized or recompressed"
        else:
            words = f"{self.kind} copy ({TRANSFORM_WORDS[self.transform]})"
        if self.background == "black":
            words += ", with the transparent parts black"
        return words

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "label": self.label,
            "hash": self.hash,
            "distance": self.distance,
            "transform": self.transform,
            "background": self.background,
            "distances": {"pdq": self.pdq_distance, "phash": self.phash_distance},
        }

    @classmethod
    def by_hash(cls, kind: str, distance: int) -> "How":
        """A lookup by one given hash (`--hash KIND:HEX`): no picture, so no variants."""
        if kind == "sha256":
            return cls("exact", kind, distance)
        return cls("resized", kind, distance, **{f"{kind}_distance": distance})


class HashSource(Protocol):
    """Stored pictures as a matcher's candidate stage sees them."""

    def candidates(self, kind: str, values: list[bytes], max_distance: int) -> Iterable[dict]:
        """Rows (at least image_id, pdq, phash) whose `kind` hash is within `max_distance` of
        any of `values`; kind "sha256" with distance 0 looks up exact bytes."""


def match(source: HashSource, picture: QueryPicture, *, max_pdq_distance: int | None = None) -> list[tuple[dict, How]]:
    """Every stored picture that is the query picture, best first: exact files, then by distance.
    A flat or blank query matches by its exact bytes only. `max_pdq_distance` widens (or
    narrows) the PDQ threshold, for a person exploring."""
    found = [(row, How("exact", "sha256", 0)) for row in source.candidates("sha256", [bytes.fromhex(picture.sha256)], 0)]
    if picture.low_information:
        return found
    pdq_limit = MATCH_DISTANCE["pdq"] if max_pdq_distance is None else max_pdq_distance
    exact = {row["image_id"] for row, _ in found}
    rows: dict[str, dict] = {}
    # Every rule of same_picture needs PDQ within pdq_limit, or pHash identical.
    for kind, limit in (("pdq", pdq_limit), ("phash", 0)):
        for row in source.candidates(kind, [getattr(v.hashes, kind) for v in picture.variants], limit):
            if row["image_id"] not in exact and len(rows) < MAX_CANDIDATES:
                rows.setdefault(row["image_id"], row)
    near = [(row, how) for row, how in zip(rows.values(), verify(picture, list(rows.values()), max_pdq_distance=pdq_limit)) if how]
    near.sort(key=lambda pair: (pair[1].distance / (256 if pair[1].hash == "pdq" else 64), pair[0]["image_id"]))
    return found + near


def verify(picture: QueryPicture, rows: list[dict], *, max_pdq_distance: int = MATCH_DISTANCE["pdq"]) -> list[How | None]:
    """For each stored row (pdq, phash), how it matches the query, or None. Vectorized: every
    candidate against every variant in one pass."""
    if not rows:
        return []
    pdq = _distances([bytes(r["pdq"]) for r in rows], [v.hashes.pdq for v in picture.variants])
    phash = _distances([bytes(r["phash"]) for r in rows], [v.hashes.phash for v in picture.variants])
    upright = np.array([v.transform == "identity" for v in picture.variants])[None, :]
    ok = same_picture(pdq, phash, upright=upright, max_pdq=max_pdq_distance)
    # The closest variant on both hashes; on a tie the unchanged picture, then white before black.
    score = np.where(ok, pdq / 256 + phash / 64, np.inf)
    found = []
    for i in range(len(rows)):
        v = int(np.argmin(score[i]))
        if not ok[i, v]:
            found.append(None)
            continue
        variant, d_pdq, d_phash = picture.variants[v], int(pdq[i, v]), int(phash[i, v])
        by_pdq = d_pdq <= max_pdq_distance
        found.append(
            How(
                KIND_OF_TRANSFORM[variant.transform],
                "pdq" if by_pdq else "phash",
                d_pdq if by_pdq else d_phash,
                variant.transform,
                variant.background,
                d_pdq,
                d_phash,
            )
        )
    return found


def _distances(stored: list[bytes], queries: list[bytes]) -> np.ndarray:
    """Hamming distances, shape (len(stored), len(queries))."""
    a = np.frombuffer(b"".join(stored), dtype=">u8").astype(np.uint64).reshape(len(stored), 1, -1)
    b = np.frombuffer(b"".join(queries), dtype=">u8").astype(np.uint64).reshape(1, len(queries), -1)
    return np.bitwise_count(a ^ b).sum(axis=2, dtype=np.int32)
