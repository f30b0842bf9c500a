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
