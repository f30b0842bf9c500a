"""An exact in-memory Hamming index over the stored perceptual hashes, for the search service.

Why not LanceDB's IVF_FLAT: an approximate index misses true matches (benchmarks/search.py
measured recall 0.93-0.98 at the thresholds), and search must not. This is multi-index
hashing: each hash is cut into 16-bit chunks, and by the pigeonhole principle two hashes
within d bits agree on some chunk to within about d / chunks bits (`flips_per_chunk`). So a
query looks up, per chunk, the rows whose chunk is that close to its own (rows are grouped by
chunk value, so each is a slice); only rows found that way get a full distance, to the query
that found them. Same answers as a brute-force scan. For wide searches, where the probes
would find a good share of the table anyway, it scans every row instead, in blocks.
"""

import threading
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from math import comb

import numpy as np
import pyarrow as pa

from indexer.keypoints import WordIndex
from indexer.matcher import How, QueryPicture, match
from indexer.regions import REGIONS_BYTES, STORED_REGIONS, unpack_regions
from indexer.store import IMAGES_SCHEMA, Match
from robots_policy.match_thresholds import MATCH_DISTANCE

CHUNK_BITS = 16
CHUNK_VALUES = 1 << CHUNK_BITS
# Probing reads each row it finds at random; a scan reads every row in order, many times
# cheaper a row. Past this share of the table found by the probes (per query), a scan is
# cheaper: measured both ways on a million rows, the two cross between PDQ 47 and 55.
SCAN_WHEN_PROBED = 0.05
SCAN_BLOCK = 16_384  # rows a scan compares at a time: its temporaries stay in cache
# From this many rows an index keeps, per chunk, a table of where each value's rows start (a
# read per probe); a smaller one searches its sorted values instead, as the table's 65,537
# entries a chunk cost more to build than the searches of a few queries.
TABLE_ROWS = 4096


@dataclass(frozen=True)
class IndexHit:
    row: int  # position in the indexed table
    distance: int


@cache
def _flip_masks(max_flips: int) -> np.ndarray:
    """Every 16-bit mask with at most `max_flips` bits set."""
    masks = [0]
    for flips in range(1, max_flips + 1):
        masks += [sum(1 << bit for bit in bits) for bits in combinations(range(CHUNK_BITS), flips)]
    return np.array(masks, dtype=np.uint16)


def flips_per_chunk(max_distance: int, chunks: int) -> list[int]:
    """How far each chunk is probed so that every hash within `max_distance` is found. With
    max_distance = chunks * q + a (a < chunks), two such hashes agree to within q bits on one of
    the first a + 1 chunks, or within q - 1 on one of the rest: otherwise their chunks alone would
    differ by at least (a + 1)(q + 1) + (chunks - a - 1) q > max_distance. -1: not probed."""
    q, a = divmod(max_distance, chunks)
    return [q] * (a + 1) + [q - 1] * (chunks - a - 1)


class HammingIndex:
    def __init__(self, hashes: np.ndarray):
        """`hashes`: one row per image, packed bits as uint8, width a multiple of 8 bytes."""
        rows, width = hashes.shape
        hashes = np.ascontiguousarray(hashes)
        # A row's 64-bit words side by side: a full distance reads one cache line.
        self.words = hashes.view(">u8").astype(np.uint64)
        # Per 16-bit chunk, the rows in order of the chunk's value: those with value v are a
        # slice of `order` (see TABLE_ROWS for how it is found).
        self._order, self._starts, self._sorted = [], [], []
        for column in hashes.view(">u2").T:
            column = column.astype(np.uint16)
            order = np.argsort(column, kind="stable").astype(np.int32)
            self._order.append(order)
            if rows >= TABLE_ROWS:
                self._starts.append(np.concatenate(([0], np.cumsum(np.bincount(column, minlength=CHUNK_VALUES)))))
            else:
                self._sorted.append(column[order])
        self.size = rows

    @classmethod
    def from_arrow(cls, vectors: pa.Array) -> "HammingIndex":
        """Build from a fixed-size-list<uint8> hash column."""
        vectors = vectors.combine_chunks() if isinstance(vectors, pa.ChunkedArray) else vectors
        flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.uint8, copy=False)
        return cls(flat.reshape(-1, vectors.type.list_size))

    def search(self, query: bytes, *, max_distance: int, limit: int = 100) -> list[IndexHit]:
        rows, distances = self.nearest([query], max_distance=max_distance)
        return [IndexHit(int(r), int(d)) for r, d in zip(rows[:limit], distances[:limit])]

    def within_any(self, queries: list[bytes], *, max_distance: int) -> np.ndarray:
        """Rows within `max_distance` of at least one of `queries` (a picture's turned and
        mirrored variants), nearest first: the matcher's candidate stage."""
        return self.nearest(queries, max_distance=max_distance)[0]

    def nearest(self, queries: list[bytes], *, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows within `max_distance` of at least one of `queries` and each one's distance to the
        closest, nearest first (a caller that keeps only so many, a loose lookup, keeps the
        closest), ties by row. The same answer as a scan of every row, which it is when probing
        the chunks would find too much of the table."""
        if not self.size or not queries:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int16)
        packed = np.frombuffer(b"".join(queries), dtype=np.uint8).reshape(len(queries), -1)
        flips = flips_per_chunk(max_distance, len(self._order))
        probed = sum(comb(CHUNK_BITS, bits) for most in flips for bits in range(most + 1)) * self.size / CHUNK_VALUES
        if probed > SCAN_WHEN_PROBED * self.size:
            rows, distances = self._scan(packed, max_distance)
        else:
            rows, distances = self._probe(packed, flips, max_distance)
        # Each row at its closest query, then nearest first.
        order = np.lexsort((rows, distances))
        rows, distances = rows[order], distances[order]
        firsts = np.unique(rows, return_index=True)[1]
        firsts.sort()
        return rows[firsts], distances[firsts]

    def _probe(self, packed: np.ndarray, flips: list[int], max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        """Multi-index hashing: the rows each query's chunks (with up to so many bits flipped)
        point at, each compared with that query only."""
        chunks = packed.view(">u2").astype(np.uint16)
        rows, owners = [], []
        for column, (most, order) in enumerate(zip(flips, self._order)):
            if most < 0:
                continue
            # Each query's keys in order: the table reads and searches go through memory in order.
            keys = np.sort(chunks[:, column, None] ^ _flip_masks(most)[None, :], axis=1).ravel()
            if self._starts:
                first, past = self._starts[column][keys], self._starts[column][keys.astype(np.int64) + 1]
            else:
                first, past = (np.searchsorted(self._sorted[column], keys, side=side) for side in ("left", "right"))
            rows.append(np.take(order, _ranges(first, past)))
            owners.append(np.repeat(np.repeat(np.arange(len(packed)), len(keys) // len(packed)), past - first))
        return self._within(np.concatenate(rows).astype(np.int64), packed, np.concatenate(owners), max_distance)

    def _scan(self, packed: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        """Every row against every query, a block at a time into reused buffers (fresh
        temporaries the size of the table cost more than the comparisons), word by word."""
        words = packed.view(">u8").astype(np.uint64)
        block = min(SCAN_BLOCK, self.size)
        xor, count, total = np.empty(block, np.uint64), np.empty(block, np.uint8), np.empty(block, np.uint8)
        found = []
        for start in range(0, self.size, block):
            part = self.words[start : start + block]
            n = len(part)
            closest = None
            for query in words:
                # uint8 sums wrap only at 256 (every bit differs); survivors are measured again below.
                np.bitwise_count(np.bitwise_xor(part[:, 0], query[0], out=xor[:n]), out=total[:n])
                for column in range(1, len(query)):
                    np.bitwise_count(np.bitwise_xor(part[:, column], query[column], out=xor[:n]), out=count[:n])
                    np.add(total[:n], count[:n], out=total[:n])
                closest = total[:n].copy() if closest is None else np.minimum(closest, total[:n], out=closest)
            found.append(np.flatnonzero(closest <= max_distance) + start)
        rows = np.repeat(np.concatenate(found), len(packed))
        return self._within(rows, packed, np.tile(np.arange(len(packed)), len(rows) // len(packed)), max_distance)

    def _within(self, rows: np.ndarray, packed: np.ndarray, owners: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        """The (row, query) pairs within `max_distance`: rows and distances."""
        # np.take, not words[rows]: several times faster a row on a large table.
        differ = np.take(self.words, rows, axis=0)
        np.bitwise_xor(differ, np.take(packed.view(">u8").astype(np.uint64), owners, axis=0), out=differ)
        differ = np.bitwise_count(differ)
        distances = differ[:, 0].astype(np.int16)
        for column in range(1, differ.shape[1]):
            distances += differ[:, column]
        keep = distances <= max_distance
        return rows[keep], distances[keep]


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
