"""An exact in-memory Hamming index over the stored perceptual hashes, for the search service.

Why not LanceDB's IVF_FLAT: an approximate index misses true matches (benchmarks/search.py
measured recall 0.93-0.98 at the thresholds), and search must not. This is multi-index
hashing: each hash is cut into 16-bit chunks, and by the pigeonhole principle two hashes
within d bits agree on some chunk to within d // chunks bits. So a query looks up, in one
sorted array per chunk, the few values that close to its own chunk; only rows found that
way get a full distance. Same answers as a brute-force scan, in well under a millisecond at
a million hashes. For wide searches (many bits per chunk) it scans everything instead.
"""

import threading
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pyarrow as pa

from indexer.keypoints import WordIndex
from indexer.matcher import How, QueryPicture, match
from indexer.regions import REGIONS_BYTES, STORED_REGIONS, unpack_regions
from indexer.store import IMAGES_SCHEMA, Match
from robots_policy.match_thresholds import MATCH_DISTANCE

CHUNK_BITS = 16
MAX_FLIPS_PER_CHUNK = 2  # beyond this the lookups cost more than a scan


@dataclass(frozen=True)
class IndexHit:
    row: int  # position in the indexed table
    distance: int


def _flip_masks(max_flips: int) -> np.ndarray:
    """Every 16-bit mask with at most `max_flips` bits set."""
    masks = [0]
    for flips in range(1, max_flips + 1):
        masks += [sum(1 << bit for bit in bits) for bits in combinations(range(CHUNK_BITS), flips)]
    return np.array(masks, dtype=np.uint16)


class HammingIndex:
    def __init__(self, hashes: np.ndarray):
        """`hashes`: one row per image, packed bits as uint8, width a multiple of 8 bytes."""
        rows, width = hashes.shape
        hashes = np.ascontiguousarray(hashes)
        # 64-bit words for full distances; columns kept contiguous for fast scans.
        words = hashes.view(">u8").astype(np.uint64)
        self.words = [np.ascontiguousarray(words[:, i]) for i in range(width // 8)]
        chunks = hashes.view(">u2").astype(np.uint16)
        self._order = [np.argsort(chunks[:, i], kind="stable").astype(np.int32) for i in range(chunks.shape[1])]
        self._sorted = [chunks[order, i] for i, order in enumerate(self._order)]
        self.size = rows

    @classmethod
    def from_arrow(cls, vectors: pa.Array) -> "HammingIndex":
        """Build from a fixed-size-list<uint8> hash column."""
        vectors = vectors.combine_chunks() if isinstance(vectors, pa.ChunkedArray) else vectors
        flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.uint8, copy=False)
        return cls(flat.reshape(-1, vectors.type.list_size))

    def search(self, query: bytes, *, max_distance: int, limit: int = 100) -> list[IndexHit]:
        if not self.size:
            return []
        rows = self._candidates(query, max_distance)
        parts = np.frombuffer(query, dtype=">u8").astype(np.uint64)
        distances = sum(np.bitwise_count(column[rows] ^ part).astype(np.int32) for column, part in zip(self.words, parts))
        keep = distances <= max_distance
        rows, distances = rows[keep], distances[keep]
        order = np.argsort(distances, kind="stable")[:limit]
        return [IndexHit(int(rows[i]), int(distances[i])) for i in order]

    def within_any(self, queries: list[bytes], *, max_distance: int) -> np.ndarray:
        """Rows within `max_distance` of at least one of `queries` (a picture's turned and
        mirrored variants), nearest first, in one vectorized pass: the matcher's candidate stage."""
        if not self.size or not queries:
            return np.empty(0, dtype=np.int64)
        per_chunk = max_distance // len(self._sorted)
        if per_chunk > MAX_FLIPS_PER_CHUNK:
            rows = np.arange(self.size)
        else:
            masks = _flip_masks(per_chunk)
            chunks = np.frombuffer(b"".join(queries), dtype=">u2").astype(np.uint16).reshape(len(queries), -1)
            found = []
            for column, (sorted_chunk, order) in enumerate(zip(self._sorted, self._order)):
                keys = _distinct((chunks[:, column, None] ^ masks[None, :]).ravel())
                starts = np.searchsorted(sorted_chunk, keys, side="left")
                stops = np.searchsorted(sorted_chunk, keys, side="right")
                found.append(order[_ranges(starts, stops)])
            rows = _distinct(np.concatenate(found))
        words = np.frombuffer(b"".join(queries), dtype=">u8").astype(np.uint64).reshape(len(queries), -1)
        distances = np.zeros((len(rows), len(queries)), dtype=np.int16)
        for column, part in zip(self.words, words.T):
            distances += np.bitwise_count(column[rows][:, None] ^ part[None, :])
        # Nearest first: a caller that keeps only so many (a loose lookup) keeps the closest.
        nearest = distances.min(axis=1)
        keep = np.flatnonzero(nearest <= max_distance)
        return rows[keep[np.argsort(nearest[keep], kind="stable")]]

    def _candidates(self, query: bytes, max_distance: int) -> np.ndarray:
        per_chunk = max_distance // len(self._sorted)
        if per_chunk > MAX_FLIPS_PER_CHUNK:
            return np.arange(self.size)
        masks = _flip_masks(per_chunk)
        found = []
        for sorted_chunk, order, value in zip(self._sorted, self._order, np.frombuffer(query, dtype=">u2")):
            keys = np.unique(np.uint16(value) ^ masks)
            starts = np.searchsorted(sorted_chunk, keys, side="left")
            stops = np.searchsorted(sorted_chunk, keys, side="right")
            found += [order[a:b] for a, b in zip(starts, stops) if b > a]
        return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int32)


def region_pdq(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The PDQ of every stored region, a row per (image, region) in order; an image whose regions
    were not computed (null) gets zeros, which match nothing (see indexer/regions.py)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    filled = column.fill_null(pa.scalar([0] * REGIONS_BYTES, column.type)) if column.null_count else column
    flat = filled.flatten().to_numpy(zero_copy_only=False).astype(np.uint8, copy=False)
    return np.ascontiguousarray(unpack_regions(flat.reshape(len(column), REGIONS_BYTES))[0].reshape(-1, 32))


def pictures_near_regions(index: HammingIndex, values: list[bytes], *, max_distance: int) -> np.ndarray:
    """Rows of the table behind a `region_pdq` index with some stored region within
    `max_distance` of any of `values`, nearest first."""
    pictures = index.within_any(values, max_distance=max_distance) // len(STORED_REGIONS)
    order = np.argsort(pictures, kind="stable")
    ranked = pictures[order]
    firsts = order[np.concatenate(([True], ranked[1:] != ranked[:-1]))] if len(ranked) else order
    return pictures[np.sort(firsts)]  # each picture where its nearest region put it


def rows_by_words(table: pa.Table, index: WordIndex, words: list[bytes], *, limit: int) -> list[tuple[dict, bool]]:
    """The rows of `table` a WordIndex of its `words` column votes for, with whether the
    query's mirrored words (the second of `words`) voted."""
    voted = index.vote(words, limit=limit)
    rows = table.take(pa.array([row for row, _, _ in voted], pa.int64())).to_pylist()
    return [(row, which == 1) for row, (_, _, which) in zip(rows, voted)]


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique's hash path is slow on these arrays)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The concatenation of range(start, stop) for each pair, without a Python loop."""
    lengths = stops - starts
    total = int(lengths.sum())
    if not total:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total) + offsets


class GalleryHashIndex:
    """HammingIndexes for a gallery's `pdq` and `phash` columns, plus the images' metadata
    (thumbnails left out), rebuilt when the table changes (a crawl appended, a removal
    deleted), so a long-running reader stays current and answers without a table query."""

    def __init__(self, gallery):
        self.gallery = gallery
        self._version: int | None = None
        self._snapshot: tuple[pa.Table, dict[str, HammingIndex]] | None = None
        self._lock = threading.Lock()

    def search(self, kind: str, value: bytes, *, max_distance: int, limit: int = 100) -> list[Match]:
        table, indexes = self._current()
        hits = indexes[kind].search(value, max_distance=max_distance, limit=limit)
        rows = table.take(pa.array([hit.row for hit in hits], pa.int64())).to_pylist()
        return [Match(row, hit.distance) for row, hit in zip(rows, hits)]

    def within_any(self, kind: str, values: list[bytes], *, max_distance: int, limit: int) -> list[dict]:
        """Rows (thumbnails left out) within `max_distance` of any of `values`, at most `limit`;
        kind "regions": rows with a stored region's PDQ that close."""
        table, indexes = self._current()
        if kind == "regions":
            rows = pictures_near_regions(indexes[kind], values, max_distance=max_distance)
        else:
            rows = indexes[kind].within_any(values, max_distance=max_distance)
        return table.take(pa.array(rows[:limit], pa.int64())).to_pylist()

    def word_candidates(self, words: list[bytes], *, limit: int) -> list[tuple[dict, bool]]:
        """Rows (thumbnails left out) sharing most visual words with `words` (upright, then
        mirrored), and whether the mirrored ones voted (indexer/keypoints.py)."""
        table, indexes = self._current()
        return rows_by_words(table, indexes["words"], words, limit=limit)

    def _current(self) -> tuple[pa.Table, dict]:
        version = self.gallery.images.version
        if version != self._version:
            with self._lock:  # one rebuild at a time; concurrent readers wait for it
                if version != self._version:
                    dataset = self.gallery.images.to_lance()
                    columns = [f.name for f in IMAGES_SCHEMA if f.name != "thumbnail"]
                    # One chunk per column: take() on a table of many small chunks is slow.
                    table = dataset.to_table(columns=columns).combine_chunks()
                    indexes = {kind: HammingIndex.from_arrow(table[kind]) for kind in ("phash", "pdq")}
                    indexes["regions"] = HammingIndex(region_pdq(table["regions"]))
                    indexes["words"] = WordIndex(table["words"])
                    table = table.drop_columns(["words"])  # the index holds them; rows never need them
                    self._snapshot, self._version = (table, indexes), dataset.version
        return self._snapshot


class NearDuplicateFinder:
    """The gallery's pdq and phash hashes in memory, for the writer's near-duplicate decisions: each new
    image costs a lookup, not a scan of the table (a scan took about 16 ms an image at 100,000
    rows here, on the crawl's own process, and grows with the table).

    An index of the table as of the last rebuild, plus one of the rows in fragments committed
    since (by this writer or any other worker; each fragment read once). Rebuilt after a removal,
    once the newer rows outgrow a quarter of the rest, and when a fragment it read is gone (a
    compaction rewrote it).
    """

    COLUMNS = ["image_id", "pdq", "phash", "duplicate_of"]
    MIN_REBUILD_ROWS = 10_000

    def __init__(self, gallery):
        self.gallery = gallery
        self._base_fragments: set[int] | None = None
        self._newer: dict[int, pa.Table] = {}  # fragment id -> its rows, for fragments since the rebuild
        self._rows = _IndexedRows([])  # the rebuilt table, then the newer rows

    def refresh(self, *, rebuild: bool = False) -> None:
        """Bring the index up to what the gallery holds now (the caller has checked out its latest)."""
        dataset = self.gallery.images.to_lance()
        fragments = {fragment.fragment_id: fragment for fragment in dataset.get_fragments()}
        # A fragment read before and gone now: a compaction (Gallery.compact) moved its rows.
        still_there = self._base_fragments is not None and (self._base_fragments | self._newer.keys()) <= fragments.keys()
        if not rebuild and still_there:
            # A fragment only changes by deletions. An update (last_seen) leaves a stale copy of a
            # row here, with the same id and hash: harmless. A removal's deletes rebuild.
            self._newer = {
                i: self._newer[i] if i in self._newer else fragments[i].to_table(columns=self.COLUMNS)
                for i in sorted(fragments.keys() - self._base_fragments)
            }
            rows = sum(table.num_rows for table in self._newer.values())
            if rows <= max(self.MIN_REBUILD_ROWS, self._rows.parts[0][0].num_rows // 4):
                self._rows.parts = self._rows.parts[:1] + ([_indexed(pa.concat_tables(self._newer.values()))] if rows else [])
                return
        self._base_fragments, self._newer = set(fragments), {}
        self._rows.parts = [_indexed(dataset.to_table(columns=self.COLUMNS))]

    def neighbours(self, pictures: list[QueryPicture]) -> list[dict[str, str]]:
        """For each picture, the stored images the matcher finds, best first: image_id -> the
        head of its cluster (its duplicate_of, else itself).

        One index lookup for the whole batch, then each picture is matched among the few rows
        found (a lookup per picture cost about 1.3 ms of the crawl process an image). Matches are
        looked up in the table before they are trusted: a removal may have deleted some after
        the index was built (then the index is rebuilt, once)."""
        found = self._match_each(pictures)
        ids = sorted({row["image_id"] for matches in found for row, _ in matches})
        if ids and len(self.gallery.get_images(ids)) < len(ids):
            self.refresh(rebuild=True)
            found = self._match_each(pictures)
        return [{row["image_id"]: row["duplicate_of"] or row["image_id"] for row, _ in matches} for matches in found]

    def candidates(self, kind: str, values: list[bytes], max_distance: int) -> list[dict]:
        """The matcher's hash source over what the finder holds."""
        return self._rows.candidates(kind, values, max_distance)

    def _match_each(self, pictures: list[QueryPicture]) -> list[list[tuple[dict, How]]]:
        hashes = [variant.hashes for picture in pictures for variant in picture.variants]
        # Every rule of the matcher needs PDQ within its threshold or pHash identical.
        rows = {
            row["image_id"]: row
            for kind, limit in (("pdq", MATCH_DISTANCE["pdq"]), ("phash", 0))
            for row in self.candidates(kind, [getattr(h, kind) for h in hashes], limit)
        }
        if not rows:
            return [[] for _ in pictures]
        schema = self._rows.parts[0][0].schema
        nearby = _IndexedRows([_indexed(pa.Table.from_pylist(list(rows.values()), schema=schema))])
        return [match(nearby, picture) for picture in pictures]


class _IndexedRows:
    """Rows with their pdq and phash indexes, as the matcher's hash source (no exact bytes:
    the writer checks those itself; no regions: near-duplicates are whole pictures)."""

    def __init__(self, parts: list[tuple[pa.Table, dict[str, HammingIndex]]]):
        self.parts = parts

    def candidates(self, kind: str, values: list[bytes], max_distance: int) -> list[dict]:
        if kind not in ("pdq", "phash"):
            return []
        rows = []
        for table, indexes in self.parts:
            found = indexes[kind].within_any(values, max_distance=max_distance)
            rows += table.take(pa.array(found, pa.int64())).to_pylist()
        return rows


def _indexed(table: pa.Table) -> tuple[pa.Table, dict[str, HammingIndex]]:
    table = table.combine_chunks()
    return table, {kind: HammingIndex.from_arrow(table[kind]) for kind in ("pdq", "phash")}
