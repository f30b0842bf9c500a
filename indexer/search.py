"""Reverse image search: near-duplicates by Hamming distance, each with every sighting of it."""

from dataclasses import dataclass

from indexer.analyze import query_hashes
from indexer.hashes import ImageHashes, format_hash
from indexer.hash_index import GalleryHashIndex
from indexer.store import Gallery
from robots_policy.match_thresholds import MATCH_DISTANCE


@dataclass
class SearchHit:
    image: dict
    distance: int
    kind: str
    sightings: list[dict]

    def to_json(self) -> dict:
        image = {k: v for k, v in self.image.items() if k not in ("phash", "pdq", "thumbnail")}
        image["phash"] = format_hash("phash", bytes(self.image["phash"]))
        image["pdq"] = format_hash("pdq", bytes(self.image["pdq"]))
        return {"distance": self.distance, "kind": self.kind, "image": image, "sightings": self.sightings}


def search_hash(
    gallery: Gallery,
    kind: str,
    value: bytes,
    *,
    max_distance: int | None = None,
    hash_index: GalleryHashIndex | None = None,
) -> list[SearchHit]:
    """Nearest first. With `hash_index` (a long-running reader's), perceptual hashes are
    looked up in memory; without, LanceDB scans the table. Both are exact."""
    limit = MATCH_DISTANCE[kind] if max_distance is None else max_distance
    if hash_index is not None and kind != "sha256":
        matches = hash_index.search(kind, value, max_distance=limit)
    else:
        matches = gallery.nearest(kind, value, max_distance=limit)
    by_image: dict[str, list[dict]] = {}
    for sighting in gallery.sightings_of([m.image["image_id"] for m in matches]):
        by_image.setdefault(sighting["image_id"], []).append(sighting)
    return [SearchHit(m.image, m.distance, kind, by_image.get(m.image["image_id"], [])) for m in matches]


def search_image(
    gallery: Gallery,
    data: bytes,
    *,
    max_distance: int | None = None,
    hash_index: GalleryHashIndex | None = None,
) -> list[SearchHit]:
    """Search with a picture: exact bytes first, then PDQ near-duplicates (see `search_hashes`)."""
    sha256, hashes = query_hashes(data)
    return search_hashes(gallery, sha256, hashes, max_distance=max_distance, hash_index=hash_index)


def search_hashes(
    gallery: Gallery,
    sha256: str,
    hashes: ImageHashes,
    *,
    max_distance: int | None = None,
    hash_index: GalleryHashIndex | None = None,
) -> list[SearchHit]:
    """`search_image` for a picture already hashed (by a worker process). A flat or blank
    picture is looked up by its exact bytes only: by hash it would match every blank one."""
    hits = search_hash(gallery, "sha256", bytes.fromhex(sha256))
    if hashes.low_information:
        return hits
    seen = {hit.image["image_id"] for hit in hits}
    near = search_hash(gallery, "pdq", hashes.pdq, max_distance=max_distance, hash_index=hash_index)
    return hits + [hit for hit in near if hit.image["image_id"] not in seen]
