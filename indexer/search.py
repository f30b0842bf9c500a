"""Reverse image search: the stored pictures the matcher (indexer/matcher.py) says are the
query picture, each with how it matched and every sighting of it."""

from dataclasses import dataclass

import pyarrow as pa

from indexer.decode import DecodeLimits
from indexer.hash_index import GalleryHashIndex, HammingIndex, pictures_near_regions, region_pdq, rows_by_words
from indexer.hashes import format_hash
from indexer.keypoints import WordIndex
from indexer.matcher import How, QueryPicture, match, query_picture
from indexer.store import IMAGES_SCHEMA, Gallery
from indexer.verify import can_align
from robots_policy.match_thresholds import MATCH_DISTANCE

# Rows one hash lookup returns, at most (the matcher caps the candidates it verifies too).
LOOKUP_LIMIT = 1000


@dataclass
class SearchHit:
    image: dict
    how: How
    sightings: list[dict]

    @property
    def distance(self) -> int:
        return self.how.distance

    @property
    def kind(self) -> str:
        return self.how.kind

    def to_json(self) -> dict:
        image = {k: v for k, v in self.image.items() if k not in ("phash", "pdq", "regions", "words", "thumbnail")}
        image["phash"] = format_hash("phash", bytes(self.image["phash"]))
        image["pdq"] = format_hash("pdq", bytes(self.image["pdq"]))
        return {**self.how.to_json(), "image": image, "sightings": self.sightings}


class GallerySource:
    """The gallery as the matcher's hash source: the service's in-memory index when it has
    one, else LanceDB's exact scan (a one-off CLI call). Both are exact."""

    def __init__(self, gallery: Gallery, hash_index: GalleryHashIndex | None = None):
        self.gallery = gallery
        self.hash_index = hash_index

    def candidates(self, kind: str, values: list[bytes], max_distance: int) -> list[dict]:
        if kind == "regions" and self.hash_index is None:
            return self._region_scan(values, max_distance)
        if self.hash_index is not None and kind != "sha256":
            return self.hash_index.within_any(kind, values, max_distance=max_distance, limit=LOOKUP_LIMIT)
        return [m.image for value in values for m in self.gallery.nearest(kind, value, max_distance=max_distance, limit=LOOKUP_LIMIT)]

    def word_candidates(self, words: list[bytes], *, limit: int) -> list[tuple[dict, bool]]:
        """Rows sharing most visual words with the query (indexer/keypoints.py): the in-memory
        index's, else one read of the table."""
        if self.hash_index is not None:
            return self.hash_index.word_candidates(words, limit=limit)
        table = self.gallery.images.to_lance().to_table(columns=[f.name for f in IMAGES_SCHEMA if f.name != "thumbnail"])
        return rows_by_words(table, WordIndex(table["words"]), words, limit=limit)

    def _region_scan(self, values: list[bytes], max_distance: int) -> list[dict]:
        """Rows with a stored region's PDQ within `max_distance` of any of `values`: one read of
        the table (thumbnails left out), exact."""
        table = self.gallery.images.to_lance().to_table(columns=[f.name for f in IMAGES_SCHEMA if f.name != "thumbnail"])
        rows = pictures_near_regions(HammingIndex(region_pdq(table["regions"])), values, max_distance=max_distance)
        return table.take(pa.array(rows[:LOOKUP_LIMIT], pa.int64())).to_pylist()


def search_hash(
    gallery: Gallery,
    kind: str,
    value: bytes,
    *,
    max_distance: int | None = None,
    hash_index: GalleryHashIndex | None = None,
) -> list[SearchHit]:
    """By one given hash, nearest first (no picture, so no turned or mirrored variants)."""
    limit = MATCH_DISTANCE[kind] if max_distance is None else max_distance
    if hash_index is not None and kind != "sha256":
        matches = hash_index.search(kind, value, max_distance=limit, limit=LOOKUP_LIMIT)
    else:
        matches = gallery.nearest(kind, value, max_distance=limit, limit=LOOKUP_LIMIT)
    return _with_sightings(gallery, [(m.image, How.by_hash(kind, m.distance)) for m in matches])


def search_image(
    gallery: Gallery,
    data: bytes,
    *,
    max_distance: int | None = None,
    hash_index: GalleryHashIndex | None = None,
    limits: DecodeLimits = DecodeLimits(),
) -> list[SearchHit]:
    """Search with a picture's bytes (see `search_picture`)."""
    return search_picture(gallery, query_picture(data, limits), max_distance=max_distance, hash_index=hash_index)


def search_picture(
    gallery: Gallery,
    picture: QueryPicture,
    *,
    max_distance: int | None = None,
    hash_index: GalleryHashIndex | None = None,
) -> list[SearchHit]:
    """A picture already hashed (by a worker process): exact files first, then the same
    picture resized, recompressed, mirrored or turned, then parts, then what the stored
    thumbnails confirm. `max_distance` is the PDQ threshold."""
    found = match(GallerySource(gallery, hash_index), picture, max_pdq_distance=max_distance, thumbnails=gallery.thumbnails)
    return _with_sightings(gallery, found)


def query_note(picture: QueryPicture, hits: list[SearchHit]) -> str | None:
    """What the searcher should know about how far this query could be matched, or None."""
    if picture.low_information:
        return ("a flat or near-blank picture: only exact copies of this file are looked for "
                "(its perceptual hashes would match every other blank picture)")
    # Asked only when nothing was found, so a search that finds something pays nothing for it.
    if not hits and picture.pixels is not None and not can_align(picture.pixels):
        return ("few details (a logo or flat graphic?): edited copies cannot be checked on their pixels, "
                "only copies whose hashes match are found")
    return None


def _with_sightings(gallery: Gallery, found: list[tuple[dict, How]]) -> list[SearchHit]:
    by_image: dict[str, list[dict]] = {}
    for sighting in gallery.sightings_of([row["image_id"] for row, _ in found]):
        by_image.setdefault(sighting["image_id"], []).append(sighting)
    return [SearchHit(row, how, by_image.get(row["image_id"], [])) for row, how in found]
