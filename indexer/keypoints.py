"""Visual words: a candidate source over local features, for edited copies that no hash comes
near (a watermark and a crop together, a page or a captioned copy stored and the original
searched). At ingest a picture keeps its ORB keypoints' descriptors (the strongest, spread over
the picture), each cut down to a word (the images table's `words` column: a picture stored before
it has none, and is found by its hashes only); a query's words vote for the stored pictures that
share them (an inverted index, word -> pictures, held in memory like the hash index), and the
few with most votes go to verification on their stored thumbnails (indexer/verify.py), which
decides. Sharing words is never a match by itself."""

import cv2
import numpy as np
import pyarrow as pa
from PIL import Image

# Keypoints are found on the grey picture scaled to this longest side, ORB's pyramid covering the
# scale a crop or a page adds; the query takes more keypoints than are stored, so that a stored
# one is more likely among them. benchmarks/matching.py measured these.
WORDS_SIDE = 320
STORED_KEYPOINTS = 160
QUERY_KEYPOINTS = 400
# ORB leaves out keypoints this close to the border (its default, 31, leaves a third of a
# 320-px picture out: too much of a crop's remaining area).
EDGE = 15
# A word is these 24 of the descriptor's 256 bits, a fixed sample spread over all of ORB's tests
# (drawn once at random; the first 24 tests, which flip more readily, gave near copies fewer
# shared words). Fewer bits let near descriptors meet more often, but unrelated pictures share
# more words too. Changing them changes every stored word: never without re-computing the column.
WORD_BIT_POSITIONS = (6, 8, 21, 34, 60, 63, 66, 75, 101, 103, 110, 119, 137, 160, 177, 191, 196, 203, 211, 213, 218, 224, 227, 255)
WORD_BYTES = len(WORD_BIT_POSITIONS) // 8
# Keypoints are chosen spread over a grid (see _spread) from this many times as many found.
GRID = 4
CANDIDATES_PER_KEYPOINT = 4
# A stored picture becomes a candidate when it shares at least this many words with the query.
MIN_SHARED = 3
# A word in more than this share of a large gallery's pictures (flat edges, text) is left out of
# the votes: it says little and its posting list is long.
STOP_SHARE = 0.02
STOP_MIN_PICTURES = 200


def words_of(grey: np.ndarray, keypoints: int) -> bytes:
    """The distinct words of a grey picture's strongest keypoints, sorted, WORD_BYTES each."""
    height, width = grey.shape
    factor = WORDS_SIDE / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if min(size) <= 2 * EDGE:
        return b""  # a strip: no keypoint fits (and ORB's pyramid fails on a picture this thin)
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    # A detector per call: it costs microseconds, and one shared by the service's threads is not safe.
    orb = cv2.ORB_create(nfeatures=keypoints * CANDIDATES_PER_KEYPOINT, edgeThreshold=EDGE)
    found = _spread(orb.detect(small, None), small.shape, keypoints)
    if not found:
        return b""
    _, descriptors = orb.compute(small, found)
    if descriptors is None:
        return b""
    return _pack(np.unique(_words(descriptors)))


def _spread(found: tuple, shape: tuple[int, int], keypoints: int) -> list:
    """The strongest keypoints, at most an equal share from each cell of a GRID x GRID grid, the
    rest of the budget by strength: a watermark or a page's text (all strong corners) must not
    take every keypoint from the picture around it."""
    if len(found) <= keypoints:
        return list(found)
    height, width = shape
    ranked = sorted(found, key=lambda k: -k.response)
    share, taken, kept, rest = max(1, keypoints // (GRID * GRID)), {}, [], []
    for point in ranked:
        cell = (min(GRID - 1, int(point.pt[0] * GRID / width)), min(GRID - 1, int(point.pt[1] * GRID / height)))
        if taken.get(cell, 0) < share:
            taken[cell] = taken.get(cell, 0) + 1
            kept.append(point)
        else:
            rest.append(point)
    return kept + rest[: keypoints - len(kept)]


def stored_words(img: Image.Image) -> bytes:
    """The `words` column for a decoded picture (empty for a picture without keypoints)."""
    return words_of(np.asarray(img.convert("L")), STORED_KEYPOINTS)


def query_words(grey: np.ndarray) -> tuple[bytes, bytes]:
    """A query's words, upright and mirrored (ORB's descriptors are not mirror-invariant)."""
    return words_of(grey, QUERY_KEYPOINTS), words_of(np.ascontiguousarray(grey[:, ::-1]), QUERY_KEYPOINTS)


def _words(descriptors: np.ndarray) -> np.ndarray:
    sampled = np.packbits(np.unpackbits(descriptors, axis=1)[:, WORD_BIT_POSITIONS], axis=1).astype(np.int32)
    return (sampled[:, 0] << 16) | (sampled[:, 1] << 8) | sampled[:, 2]


def _pack(words: np.ndarray) -> bytes:
    return np.stack([(words >> 16) & 255, (words >> 8) & 255, words & 255], axis=1).astype(np.uint8).tobytes()


def _unpack(data: bytes | np.ndarray) -> np.ndarray:
    triples = np.frombuffer(data, np.uint8).reshape(-1, WORD_BYTES).astype(np.int32)
    return (triples[:, 0] << 16) | (triples[:, 1] << 8) | triples[:, 2]


class WordIndex:
    """Word -> the rows (pictures) that hold it, for voting. Rows are positions in the indexed
    column; a null (a picture stored before words were kept) holds none."""

    def __init__(self, column: pa.Array | pa.ChunkedArray | list[bytes | None]):
        if isinstance(column, list):
            column = pa.array(column, pa.binary())
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        column = column.fill_null(b"") if column.null_count else column
        offsets = np.frombuffer(column.buffers()[1], np.int32)[column.offset : column.offset + len(column) + 1]
        data = column.buffers()[2]
        data = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]] if data is not None else np.empty(0, np.uint8)
        words = _unpack(data)
        rows = np.repeat(np.arange(len(column), dtype=np.int32), np.diff(offsets) // WORD_BYTES)
        order = np.argsort(words, kind="stable")
        self._rows = rows[order]
        ordered = words[order]
        firsts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1]))) if len(ordered) else np.empty(0, np.int64)
        self._words = ordered[firsts]
        self._starts = firsts
        self._stops = np.append(firsts[1:], len(ordered))
        self.size = len(column)
        self._stop_above = max(STOP_MIN_PICTURES, STOP_SHARE * self.size)

    def vote(self, queries: list[bytes], *, limit: int) -> list[tuple[int, int, int]]:
        """The rows sharing at least MIN_SHARED words with one of `queries` (packed words), as
        (row, words shared, which query), the highest score first: a shared word counts by how
        rare it is (its inverse document frequency), each row by its best query."""
        best: dict[int, tuple[float, int, int]] = {}
        for which, packed in enumerate(queries):
            found = self._votes(_unpack(packed))
            for row, shared, score in found:
                if row not in best or score > best[row][0]:
                    best[row] = (score, shared, which)
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
        return [(row, shared, which) for row, (_, shared, which) in ranked]

    def _votes(self, words: np.ndarray) -> list[tuple[int, int, float]]:
        if not len(words) or not len(self._words):
            return []
        at = np.minimum(np.searchsorted(self._words, words), len(self._words) - 1)
        at = at[self._words[at] == words]
        starts, stops = self._starts[at], self._stops[at]
        keep = stops - starts <= self._stop_above
        starts, stops = starts[keep], stops[keep]
        if not len(starts):
            return []
        lengths = stops - starts
        postings = np.concatenate([self._rows[a:b] for a, b in zip(starts, stops)])
        weights = np.repeat(np.log(self.size / lengths + 1.0), lengths)
        rows, inverse = np.unique(postings, return_inverse=True)
        shared = np.bincount(inverse)
        scores = np.bincount(inverse, weights=weights)
        keep = np.flatnonzero(shared >= MIN_SHARED)
        return [(int(rows[i]), int(shared[i]), float(scores[i])) for i in keep]

