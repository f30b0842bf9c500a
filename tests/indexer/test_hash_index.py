import numpy as np
import pytest

from indexer.hash_index import HammingIndex


@pytest.mark.parametrize(("bits", "max_distance"), [(256, 0), (256, 31), (256, 40), (256, 100), (64, 8), (64, 12), (64, 20)])
def test_same_answers_as_brute_force(bits, max_distance):
    rng = np.random.default_rng(bits + max_distance)
    stored = rng.integers(0, 256, (5000, bits // 8), dtype=np.uint8)
    index = HammingIndex(stored)
    for row in rng.choice(len(stored), 25, replace=False):
        query_bits = np.unpackbits(stored[row])
        query_bits[rng.choice(bits, rng.integers(0, max_distance + 1), replace=False)] ^= 1
        query = np.packbits(query_bits)
        distances = np.unpackbits(stored ^ query, axis=1).sum(axis=1)
        want = sorted((int(d), int(r)) for r, d in enumerate(distances) if d <= max_distance)
        got = sorted((hit.distance, hit.row) for hit in index.search(query.tobytes(), max_distance=max_distance, limit=10_000))
        assert got == want


def test_within_any_answers_nearest_first_so_a_capped_loose_lookup_keeps_the_closest():
    from indexer.hash_index import pictures_near_regions

    rng = np.random.default_rng(7)
    stored = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    queries = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(2)]
    index = HammingIndex(stored)
    rows = index.within_any(queries, max_distance=112)
    packed = np.frombuffer(b"".join(queries), np.uint8).reshape(2, 32)
    nearest = np.array([np.unpackbits(stored[r] ^ packed, axis=1).sum(axis=1).min() for r in rows])
    assert len(rows) > 10 and (np.diff(nearest) >= 0).all() and nearest[-1] <= 112
    # Regions: six rows per picture, each picture once, where its nearest region ranks it.
    pictures = pictures_near_regions(index, queries, max_distance=112)
    assert len(set(pictures.tolist())) == len(pictures) and pictures.tolist() == list(dict.fromkeys((rows // 6).tolist()))


@pytest.mark.parametrize(
    ("rows", "max_distance"), [(4000, d) for d in (0, 9, 31, 40, 47, 63, 96, 255)] + [(5000, d) for d in (0, 31, 40, 47)]
)
def test_nearest_is_a_brute_force_scan_whether_it_probes_or_scans(rows, max_distance):
    """Every row within the distance, each at its closest query, nearest first then by row: the
    probes (chunks searched to unequal depths past 31; a small index searches its chunks' sorted
    values, a large one has a table of where each value starts) and the scan alike. A stored
    complement of a query (every bit differs) is the farthest a hash can be."""
    from indexer.hash_index import SCAN_WHEN_PROBED, TABLE_ROWS, _flip_masks, flips_per_chunk

    rng = np.random.default_rng(max_distance)
    stored = rng.integers(0, 256, (rows, 32), dtype=np.uint8)
    queries = []
    for row in rng.choice(len(stored), 3, replace=False):
        bits = np.unpackbits(stored[row])
        bits[rng.choice(256, rng.integers(0, max_distance + 1), replace=False)] ^= 1
        queries.append(np.packbits(bits))
    stored[0] = ~queries[0]
    index = HammingIndex(stored)
    assert bool(index._starts) == (len(stored) >= TABLE_ROWS)  # both ways of finding a chunk's rows are tried
    rows, distances = index.nearest([q.tobytes() for q in queries], max_distance=max_distance)
    every = np.unpackbits(stored[:, None, :] ^ np.array(queries)[None], axis=2).sum(axis=2).min(axis=1)
    want = sorted((int(d), r) for r, d in enumerate(every) if d <= max_distance)
    assert list(zip(distances.tolist(), rows.tolist())) == want
    assert want  # each query was planted near a stored row
    # Which path answered: probing while it touches little of the table.
    probed = sum(len(_flip_masks(f)) for f in flips_per_chunk(max_distance, 16) if f >= 0) / 65536
    assert (probed > SCAN_WHEN_PROBED) == (max_distance >= 63)


def test_flips_per_chunk_probe_only_as_deep_as_the_pigeonhole_needs():
    from indexer.hash_index import flips_per_chunk

    assert flips_per_chunk(31, 16) == [1] * 16
    assert flips_per_chunk(40, 16) == [2] * 9 + [1] * 7  # 9 * 3 + 7 * 2 = 41 > 40
    assert flips_per_chunk(0, 16) == [0] + [-1] * 15
    assert flips_per_chunk(8, 4) == [2, 1, 1, 1]
