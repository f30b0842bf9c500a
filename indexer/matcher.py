"""The one matcher: which stored pictures are the query picture, and how each matched.

Search (CLI, HTTP, web page), removal by image and near-duplicate marking all ask it. Two
stages: candidates from a hash source (whatever index the caller holds: the service's
in-memory index, a removal's tables, the writer's near-duplicate index, a LanceDB scan),
looked up with the query's pHash and PDQ turned and mirrored every way (and, for a picture
with transparency, flattened onto white and onto black); then verification of each candidate
on both stored hashes against every variant, by the rule in robots_policy/match_thresholds.py.

Parts of pictures (indexer/regions.py), where the source keeps stored regions: the query whole
(upright and mirrored) and its centre windows against each stored picture's fixed regions
finds pictures that contain the query (it was cropped out of them); the query's windows against
stored whole pictures finds pictures that are a part of it (it has a caption bar, or is a page
the picture was pasted into, or the stored copy was cropped). Every such match needs both
hashes to agree, and none is confident enough to delete by.

Verification on pixels (indexer/verify.py), where the caller can read stored thumbnails (search):
looser hash candidates than the rules above allow (the query whole, upright and mirrored, against
whole pictures and their regions; its windows against whole pictures; the query turned back a few
degrees), a few per query, are each lined up with their stored thumbnail. One that lines up and
whose pixels agree is a match: a crop, a slightly turned, watermarked or captioned copy. None is
confident: deletions and tombstones stay with whole-picture hash matches. Besides the hash
candidates, a few stored pictures that share most visual words with the query (indexer/keypoints.py:
local features, where an edit has moved every hash too far) are verified the same way.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from indexer.decode import BLACK, DecodedImage, DecodeLimits, decode_bounded
from indexer.hashes import ImageHashes, dihedral_hashes, hash_input, perceptual_hashes, sha256_hex
from indexer.keypoints import query_words
from indexer.regions import STORED_REGION_WORDS, STORED_REGIONS, WHOLE, Box, Window, query_windows, unpack_regions
from indexer.verify import QueryFeatures, align, decode_thumbnail
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
# The query's turns and mirrors looked up against stored regions (see _region_variants).
REGION_TRANSFORMS = ("identity", "flip_left_right")
# Loose candidates, verified on the stored thumbnail: the query whole (upright and mirrored)
# within LOOSE_WHOLE_PDQ of a stored whole picture (a scan, of two hashes), the other lookups
# (regions, windows, the query turned back) within LOOSE_PART_PDQ (the widest the index answers
# without a scan); MAX_VERIFIED of them, the closest of each lookup in turn, so a query's cost is
# bounded.
LOOSE_WHOLE_PDQ = 96
LOOSE_PART_PDQ = 47
MAX_VERIFIED = 6
# Candidates by shared visual words (indexer/keypoints.py), verified besides those: the best few
# not already chosen, of the WORD_LOOKUP rows with most votes.
MAX_WORD_VERIFIED = 2
WORD_LOOKUP = 20
# A copy turned a few degrees is far from its original on any hash, but close once turned back:
# the query is also hashed turned by these (degrees, anticlockwise) and looked up loosely.
TURNS = (-5, -3, 3, 5)
# Matches on part of a picture, with their words.
PART_KINDS = {"crop": "a crop of your picture", "contains": "contains your picture"}


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
    centre_windows: tuple[Window, ...] = ()  # looked up against stored regions and whole pictures
    part_windows: tuple[Window, ...] = ()  # looked up against stored whole pictures
    # Grey pixels (longest side <= 512), for verification against stored thumbnails.
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    turned_pdq: tuple[bytes, ...] = ()  # the query's PDQ turned by each of TURNS
    words: tuple[bytes, ...] = ()  # visual words upright, then mirrored (indexer/keypoints.py)

    @property
    def hashes(self) -> ImageHashes:
        return self.variants[0].hashes

    @property
    def low_information(self) -> bool:
        """Flat or blank: matched by its exact bytes only (see ImageHashes.low_information)."""
        return self.hashes.low_information


def query_picture(data: bytes, limits: DecodeLimits = DecodeLimits()) -> QueryPicture:
    """Decode a query once (twice if it has transparency) and hash every variant."""
    return decoded_query_picture(data, decode_bounded(data, limits), limits)


def decoded_query_picture(data: bytes, decoded: DecodedImage, limits: DecodeLimits = DecodeLimits(), *, whole_only: bool = False) -> QueryPicture:
    """`query_picture` for a caller that has decoded `data` already (with `limits`); `whole_only`:
    the hash variants alone, for a caller that matches whole pictures (removal by image)."""
    variants = [Variant(t, "white", h) for t, h in dihedral_hashes(decoded.image).items()]
    if decoded.has_alpha:
        # A JPEG copy of a transparent picture has it flattened onto something: often black.
        on_black = decode_bounded(data, limits, background=BLACK).image
        variants += [Variant(t, "black", h) for t, h in dihedral_hashes(on_black).items()]
    unique = {}
    for variant in variants:  # a symmetric or opaque picture repeats hashes: look each up once
        unique.setdefault((variant.hashes.pdq, variant.hashes.phash), variant)
    if whole_only or variants[0].hashes.low_information:
        return QueryPicture(sha256_hex(data), tuple(unique.values()))
    picture = hash_input(decoded.image)
    centres, parts = query_windows(picture)
    grey = np.asarray(decoded.image.convert("L"))
    turned = tuple(perceptual_hashes(picture.small.rotate(degrees, Image.Resampling.BILINEAR, fillcolor="white")).pdq for degrees in TURNS)
    return QueryPicture(sha256_hex(data), tuple(unique.values()), tuple(centres), tuple(parts), grey, turned, query_words(grey))


@dataclass(frozen=True)
class How:
    """How a stored picture matched: what a person reads, and what a deletion may rely on."""

    # "exact" (same file), "resized" (same picture, resized or recompressed), "mirrored", "rotated",
    # "edited" (verified on the thumbnail: whole and upright, with text, marks or colours changed),
    # or for part of a picture: "crop" (the stored picture is a part of the query) and
    # "contains" (the stored picture contains the query: the query is a crop of it).
    kind: str
    hash: str  # the hash that decided: sha256, pdq or phash
    distance: int  # Hamming distance on that hash (0 for sha256)
    transform: str = "identity"  # which turn or mirror of the query matched (indexer.hashes.DIHEDRAL)
    background: str = "white"  # the query's transparency flattened onto this
    pdq_distance: int | None = None
    phash_distance: int | None = None
    region: Box | None = None  # the part of the query that matched (fractions), for "crop" and "contains"
    stored_region: str | None = None  # for "contains": which of the stored picture's regions (STORED_REGIONS)
    # Lined up with the stored thumbnail (indexer/verify.py): how far turned (degrees,
    # anticlockwise) and how well the pixels agree; None for a match on hashes alone.
    angle: float | None = None
    agreement: float | None = None

    @property
    def confident(self) -> bool:
        """Exact bytes, or both hashes of the whole picture within threshold: enough to delete or
        to block a crawl. A match on a part of a picture is not: a figure that shows a photo is
        not that photo, and a deletion must not reach it."""
        if self.kind == "exact":
            return True
        if self.kind in PART_KINDS or self.agreement is not None:
            return False
        if self.pdq_distance is None or self.phash_distance is None:
            return False
        return bool(both_agree(self.pdq_distance, self.phash_distance))

    @property
    def label(self) -> str:
        if self.kind == "exact":
            words = "exact file"
        elif self.kind == "resized":
            words = "same picture" if self.distance == 0 else "same picture, resized or recompressed"
        elif self.kind in PART_KINDS:
            words = PART_KINDS[self.kind] + _region_words(self.region, self.stored_region)
            if self.transform != "identity":
                words += f", {TRANSFORM_WORDS[self.transform]}"
        elif self.kind == "edited":
            words = "same picture with text, marks or colours changed"
        elif self.kind == "rotated" and self.transform == "identity":
            words = f"rotated copy (turned {abs(self.angle):.0f}° {'anticlockwise' if self.angle > 0 else 'clockwise'})"
        else:
            words = f"{self.kind} copy ({TRANSFORM_WORDS[self.transform]})"
        if self.agreement is not None:
            words += ", checked on the pixels"
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
            # left, top, right, bottom as fractions of the query; null for a whole-picture match
            "region": None if self.region is None else [round(v, 4) for v in self.region],
            "stored_region": self.stored_region,
            "verified": None if self.agreement is None else {"angle": round(self.angle, 1), "agreement": round(self.agreement, 3)},
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
        any of `values`; kind "sha256" with distance 0 looks up exact bytes. Kind "regions": rows
        (with their `regions`) where the PDQ of some stored region is that close; a source that
        keeps no regions returns none."""

    # Optional, for a source that keeps visual words (indexer/keypoints.py):
    # word_candidates(words: list[bytes], limit: int) -> list[tuple[dict, bool]], the rows that
    # share most words with any of `words` (the query's upright, then mirrored), with whether the
    # mirrored ones voted; a source without it adds no such candidates.


# Stored thumbnails (JPEG bytes) by image_id, read in one batch; ids it lacks are left out.
ThumbnailReader = Callable[[list[str]], dict[str, bytes]]


def match(
    source: HashSource,
    picture: QueryPicture,
    *,
    max_pdq_distance: int | None = None,
    thumbnails: ThumbnailReader | None = None,
) -> list[tuple[dict, How]]:
    """Every stored picture that is the query picture, best first: exact files, then by distance,
    then parts, then what verification on `thumbnails` confirmed. A flat or blank query matches
    by its exact bytes only. `max_pdq_distance` widens (or narrows) the PDQ threshold, for a
    person exploring."""
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
    verifying = thumbnails is not None and picture.pixels is not None
    if verifying:  # the parts' lookups are verification's loose ones, narrowed: each asked once
        source = _AskedOnce(source, wider=[(kind, values, limit) for kind, values, _, limit in _loose_lookups(picture)])
    parts = _match_parts(source, picture, taken=exact | {row["image_id"] for row, _ in near})
    parts.sort(key=lambda pair: (pair[1].distance, pair[0]["image_id"]))
    verified = []
    if verifying:
        taken = exact | {row["image_id"] for row, _ in near + parts}
        verified = _match_verified(source, picture, thumbnails, taken=taken)
    return found + near + parts + verified


class _AskedOnce:
    """One query's hash source: a lookup of the same values as a wider one to come (the parts'
    strict lookups repeat the values of verification's loose ones) is answered from the wider
    answer, narrowed; every answer is remembered."""

    def __init__(self, source: HashSource, *, wider: list[tuple[str, list[bytes], int]]):
        self.source = source
        self.wider = {(kind, tuple(values)): limit for kind, values, limit in wider if values}
        self.answers: dict[tuple[str, tuple[bytes, ...], int], list[dict]] = {}
        if hasattr(source, "word_candidates"):  # the optional lookup passes through, asked once anyway
            self.word_candidates = source.word_candidates

    def candidates(self, kind: str, values: list[bytes], max_distance: int) -> list[dict]:
        reach = max(max_distance, self.wider.get((kind, tuple(values)), max_distance))
        key = (kind, tuple(values), reach)
        if key not in self.answers:
            self.answers[key] = list(self.source.candidates(kind, values, reach))
        rows = self.answers[key]
        if reach == max_distance or not rows:
            return rows
        near = _lookup_distances(kind, rows, values).min(axis=1) <= max_distance
        return [row for row, keep in zip(rows, near) if keep]


def _loose_lookups(picture: QueryPicture) -> tuple[tuple[str, list[bytes], list[bool], int], ...]:
    """Verification's lookups: each one's kind, the query's tries, which of them are mirrored,
    and the loose threshold."""
    whole = _region_variants(picture)
    whole_pdq = [v.hashes.pdq for v in whole]
    windows = [w.hashes.pdq for w in picture.part_windows + picture.centre_windows]
    centres = [w.hashes.pdq for w in picture.centre_windows]
    mirrored_whole = [v.transform != "identity" for v in whole]
    return (
        ("pdq", whole_pdq, mirrored_whole, LOOSE_WHOLE_PDQ),
        ("regions", whole_pdq + centres, mirrored_whole + [False] * len(centres), LOOSE_PART_PDQ),
        ("pdq", windows, [False] * len(windows), LOOSE_PART_PDQ),
        ("pdq", list(picture.turned_pdq), [False] * len(picture.turned_pdq), LOOSE_PART_PDQ),
    )


def _lookup_distances(kind: str, rows: list[dict], values: list[bytes]) -> np.ndarray:
    """PDQ distances, shape (len(rows), len(values)), as a lookup of `kind` measures them: to
    the whole picture, or for "regions" to the closest stored region."""
    if kind == "regions":
        stored = unpack_regions([bytes(row["regions"]) for row in rows])[0].reshape(-1, 32)
        return _hamming(stored, _packed(values)).reshape(len(rows), len(STORED_REGIONS), -1).min(axis=1)
    return _distances([bytes(row["pdq"]) for row in rows], values)


def _match_verified(source: HashSource, picture: QueryPicture, thumbnails: ThumbnailReader, *, taken: set[str]) -> list[tuple[dict, How]]:
    """The closest loose candidates of each lookup in turn (a turned copy is found only by the
    whole picture or the query turned back, a cropped one only by regions or windows: none crowds
    the others out), each
    lined up with its stored thumbnail (indexer/verify.py) the way round its closest hash says."""
    rows: dict[str, dict] = {}
    ranked: list[list[tuple[int, str, bool]]] = []  # per lookup: (distance, image_id, mirrored), closest first
    for kind, values, mirrored, limit in _loose_lookups(picture):
        found = [row for row in source.candidates(kind, values, limit) if row["image_id"] not in taken] if values else []
        if not found:
            continue
        distances = _lookup_distances(kind, found, values)
        closest, best = distances.min(axis=1), distances.argmin(axis=1)
        ranked.append(sorted((int(closest[i]), row["image_id"], bool(mirrored[best[i]])) for i, row in enumerate(found)))
        for row in found:
            rows.setdefault(row["image_id"], row)
    chosen: dict[str, tuple[int, bool]] = {}
    for place in range(max((len(r) for r in ranked), default=0)):
        if len(chosen) >= MAX_VERIFIED:
            break
        for lookup in ranked:
            if place < len(lookup) and len(chosen) < MAX_VERIFIED:
                distance, image_id, mirrored = lookup[place]
                chosen.setdefault(image_id, (distance, mirrored))
    # A source that keeps visual words (the gallery's) adds its own few candidates.
    word_candidates = getattr(source, "word_candidates", None)
    if word_candidates is not None and picture.words:
        extra = [(row, mirrored) for row, mirrored in word_candidates(list(picture.words), limit=WORD_LOOKUP)
                 if row["image_id"] not in taken and row["image_id"] not in chosen][:MAX_WORD_VERIFIED]
        whole_pdq = [v.hashes.pdq for v in _region_variants(picture)]
        for row, mirrored in extra:
            rows.setdefault(row["image_id"], row)
            chosen[row["image_id"]] = (int(_distances([bytes(row["pdq"])], whole_pdq).min()), mirrored)
    if not chosen:
        return []
    stored = thumbnails(list(chosen))
    query = QueryFeatures(picture.pixels)
    found = []
    for image_id, (distance, mirrored) in chosen.items():
        grey = decode_thumbnail(stored[image_id]) if image_id in stored else None
        alignment = align(query, grey, mirrored=mirrored) if grey is not None else None
        if alignment is not None:
            transform = "flip_left_right" if alignment.mirrored else "identity"
            how = How(alignment.kind, "pdq", distance, transform, "white", region=alignment.region,
                      angle=alignment.angle, agreement=alignment.agreement)
            found.append((rows[image_id], how))
    return found


def _match_parts(source: HashSource, picture: QueryPicture, *, taken: set[str]) -> list[tuple[dict, How]]:
    """Stored pictures that contain the query or are a part of it; both hashes must agree
    (every extra lookup is one more chance of a false match)."""
    if not (picture.centre_windows or picture.part_windows):
        return []  # a picture given by its hashes alone (removal, near-duplicates): whole pictures only
    limit = MATCH_DISTANCE["pdq"]
    contains: dict[str, dict] = {}
    wanted = [v.hashes.pdq for v in _region_variants(picture)] + [w.hashes.pdq for w in picture.centre_windows]
    for row in source.candidates("regions", wanted, limit):
        if row["image_id"] not in taken and row.get("regions") is not None and len(contains) < MAX_CANDIDATES:
            contains.setdefault(row["image_id"], row)
    found = [(row, how) for row, how in zip(contains.values(), _verify_contains(picture, list(contains.values()))) if how]
    taken = taken | contains.keys()
    crops: dict[str, dict] = {}
    windows = picture.part_windows + picture.centre_windows
    if windows:
        for row in source.candidates("pdq", [w.hashes.pdq for w in windows], limit):
            if row["image_id"] not in taken and len(crops) < MAX_CANDIDATES:
                crops.setdefault(row["image_id"], row)
    found += [(row, how) for row, how in zip(crops.values(), _verify_crops(picture, list(crops.values()))) if how]
    return found


def _verify_contains(picture: QueryPicture, rows: list[dict]) -> list[How | None]:
    """The query whole (upright and mirrored) and its centre windows against each row's stored regions."""
    if not rows:
        return []
    tries = [(v.hashes, v.transform, WHOLE) for v in _region_variants(picture)] + [(w.hashes, "identity", w.box) for w in picture.centre_windows]
    pdq, phash = unpack_regions([bytes(row["regions"]) for row in rows])
    names = list(STORED_REGIONS)
    shape = (len(rows), len(names), len(tries))
    d_pdq = _hamming(pdq.reshape(-1, 32), _packed([h.pdq for h, _, _ in tries])).reshape(shape)
    d_phash = _hamming(phash.reshape(-1, 8), _packed([h.phash for h, _, _ in tries])).reshape(shape)
    return [
        _best("contains", d_pdq[i], d_phash[i], lambda r, t: (tries[t][1], tries[t][2], names[r])) for i in range(len(rows))
    ]


def _region_variants(picture: QueryPicture) -> list[Variant]:
    """The query's variants looked up against stored regions: upright and mirrored (a flipped
    repost is common; a turned crop is not, and each lookup is one more chance of a false match
    and one more pass over six hashes per stored picture)."""
    return [v for v in picture.variants if v.transform in REGION_TRANSFORMS and v.background == "white"]


def _verify_crops(picture: QueryPicture, rows: list[dict]) -> list[How | None]:
    """The query's part and centre windows against each row's whole-picture hashes."""
    if not rows:
        return []
    windows = picture.part_windows + picture.centre_windows
    d_pdq = _distances([bytes(r["pdq"]) for r in rows], [w.hashes.pdq for w in windows])
    d_phash = _distances([bytes(r["phash"]) for r in rows], [w.hashes.phash for w in windows])
    return [_best("crop", d_pdq[i][None], d_phash[i][None], lambda r, t: ("identity", windows[t].box, None)) for i in range(len(rows))]


def _best(kind: str, d_pdq: np.ndarray, d_phash: np.ndarray, describe) -> How | None:
    """The closest pair where both hashes agree, of one row's (stored hash, query try) distances."""
    ok = both_agree(d_pdq, d_phash)
    if not ok.any():
        return None
    score = np.where(ok, d_pdq / 256 + d_phash / 64, np.inf)
    r, t = np.unravel_index(int(np.argmin(score)), score.shape)
    transform, region, stored_region = describe(r, t)
    distance = int(d_pdq[r, t])
    return How(kind, "pdq", distance, transform, "white", distance, int(d_phash[r, t]), tuple(region), stored_region)


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


def _region_words(region: Box | None, stored_region: str | None) -> str:
    """Which part of which, in words: ' (the part 0–100% across, 0–85% down)', ', as its middle 80%'."""
    words = ""
    if region is not None and region != WHOLE:
        left, top, right, bottom = (round(v * 100) for v in region)
        words += f" (the part {left}–{right}% across, {top}–{bottom}% down)"
    if stored_region is not None:
        words += f", as its {STORED_REGION_WORDS[stored_region]}"
    return words


def _distances(stored: list[bytes], queries: list[bytes]) -> np.ndarray:
    """Hamming distances, shape (len(stored), len(queries))."""
    return _hamming(_packed(stored), _packed(queries))


def _packed(values: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), -1)


def _hamming(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Hamming distances between rows of packed bits, shape (len(stored), len(queries))."""
    a = np.ascontiguousarray(stored).view(">u8").astype(np.uint64)[:, None, :]
    b = np.ascontiguousarray(queries).view(">u8").astype(np.uint64)[None, :, :]
    return np.bitwise_count(a ^ b).sum(axis=2, dtype=np.int32)
