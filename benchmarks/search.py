"""Search latency and recall on a generated gallery (default 1,000,000 images).

Compares, in one invocation, for `GET /search?hash=` style lookups:
- LanceDB exact scan (bypass_vector_index): the baseline,
- LanceDB IVF_FLAT Hamming index (approximate),
- the in-memory HammingIndex the service uses (exact, pigeonhole-filtered),
- the whole HTTP path through the service (uvicorn on 127.0.0.1),
with p50/p99 latency, recall against a brute-force scan at the match thresholds
(robots_policy/match_thresholds.py), and index build times.

    .venv/bin/python benchmarks/search.py [--images 1000000] [--queries 200]
"""

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.hash_index import GalleryHashIndex  # noqa: E402
from robots_policy.match_thresholds import MATCH_DISTANCE  # noqa: E402
from indexer.store import IMAGES_SCHEMA, SIGHTINGS_SCHEMA, Gallery  # noqa: E402

THRESHOLDS = {kind: MATCH_DISTANCE[kind] for kind in ("pdq", "phash")}
BITS = {"pdq": 256, "phash": 64}


def build_gallery(uri: str, images: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    gallery = Gallery(uri)
    hashes = {kind: rng.integers(0, 256, (images, bits // 8), dtype=np.uint8) for kind, bits in BITS.items()}
    now = datetime.now(timezone.utc)
    batch = 100_000
    for start in range(0, images, batch):
        stop = min(images, start + batch)
        ids = [f"{i:064x}" for i in range(start, stop)]
        columns = {
            "image_id": pa.array(ids),
            **{
                kind: pa.FixedSizeListArray.from_arrays(pa.array(hashes[kind][start:stop].ravel()), BITS[kind] // 8)
                for kind in BITS
            },
            "width": pa.array(np.full(stop - start, 640, np.int32)),
            "height": pa.array(np.full(stop - start, 480, np.int32)),
            "format": pa.array(["JPEG"] * (stop - start)),
            "bytes": pa.array(np.full(stop - start, 50_000, np.int64)),
            "face_count": pa.array(np.zeros(stop - start, np.int32)),
            "thumbnail": pa.array([b""] * (stop - start), pa.binary()),
            "first_seen": pa.array([now] * (stop - start), IMAGES_SCHEMA.field("first_seen").type),
            "last_seen": pa.array([now] * (stop - start), IMAGES_SCHEMA.field("last_seen").type),
            "duplicate_of": pa.array([None] * (stop - start), pa.string()),
        }
        gallery.images.add(pa.table(columns, schema=IMAGES_SCHEMA))
        sightings = {
            "sighting_id": pa.array([f"s{i}" for i in range(start, stop)]),
            "image_id": pa.array(ids),
            "image_url": pa.array([f"https://site{i % 5000}.test/img/{i}.jpg" for i in range(start, stop)]),
            "page_url": pa.array([f"https://site{i % 5000}.test/page/{i // 10}" for i in range(start, stop)]),
            "domain": pa.array([f"site{i % 5000}.test" for i in range(start, stop)]),
            "alt_text": pa.array([None] * (stop - start), pa.string()),
            "license_url": pa.array([None] * (stop - start), pa.string()),
            "fetched_at": pa.array([now] * (stop - start), SIGHTINGS_SCHEMA.field("fetched_at").type),
            "http_status": pa.array(np.full(stop - start, 200, np.int32)),
            "rendered": pa.array(np.zeros(stop - start, bool)),
            "policy": pa.array(["bench"] * (stop - start)),
        }
        gallery.sightings.add(pa.table(sightings, schema=SIGHTINGS_SCHEMA))
    return hashes


def near_queries(stored: np.ndarray, count: int, max_flip: int, rng) -> list[bytes]:
    """Stored hashes with up to `max_flip` random bits flipped: each has at least one true match."""
    queries = []
    for row in rng.choice(len(stored), count, replace=False):
        bits = np.unpackbits(stored[row])
        flip = rng.choice(len(bits), rng.integers(0, max_flip + 1), replace=False)
        bits[flip] ^= 1
        queries.append(np.packbits(bits).tobytes())
    return queries


def brute_force(stored: np.ndarray, query: bytes, max_distance: int) -> set[int]:
    distances = np.unpackbits(stored ^ np.frombuffer(query, np.uint8), axis=1).sum(axis=1)
    return set(np.flatnonzero(distances <= max_distance).tolist())


def latencies(fn, queries) -> tuple[list[float], list]:
    times, results = [], []
    for query in queries:
        start = time.perf_counter()
        results.append(fn(query))
        times.append(time.perf_counter() - start)
    return times, results


def recall(results: list[set[int]], truth: list[set[int]]) -> float:
    found = sum(len(r & t) for r, t in zip(results, truth))
    return found / max(1, sum(len(t) for t in truth))


def ids_to_rows(ids) -> set[int]:
    return {int(i, 16) for i in ids}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobes", type=int, default=20)  # IVF_FLAT partitions probed per query
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    tmp = tempfile.mkdtemp(prefix="bench-search-")
    try:
        start = time.perf_counter()
        hashes = build_gallery(tmp, args.images, rng)
        print(f"generated {args.images} images in {time.perf_counter() - start:.1f} s")
        gallery = Gallery(tmp, create=False, fresh_reads=True)
        start = time.perf_counter()
        gallery.index_lookup_columns()
        print(f"scalar indexes on image_id built in {time.perf_counter() - start:.1f} s")
        rows = []
        for kind in ("pdq", "phash"):
            threshold = THRESHOLDS[kind]
            queries = near_queries(hashes[kind], args.queries, threshold, rng)
            truth = [brute_force(hashes[kind], q, threshold) for q in queries]

            def lance_exact(q, kind=kind, threshold=threshold):
                return ids_to_rows(m.image["image_id"] for m in gallery.nearest(kind, q, max_distance=threshold))

            few = max(10, args.queries // 10)  # the slow baseline gets a tenth of the queries
            times, found = latencies(lance_exact, queries[:few])
            rows.append((kind, "LanceDB exact scan (baseline)", 0.0, times, recall(found, truth[:few]), times))
            baseline = times

            start = time.perf_counter()
            gallery.images.create_index(
                metric="hamming", vector_column_name=kind, index_type="IVF_FLAT", num_partitions=256, replace=True
            )
            build = time.perf_counter() - start

            def lance_ivf(q, kind=kind, threshold=threshold):
                query = gallery.images.search(list(q), vector_column_name=kind).distance_type("hamming")
                result = query.nprobes(args.nprobes).select(["image_id", "_distance"]).limit(100).to_list()
                return ids_to_rows(r["image_id"] for r in result if r["_distance"] <= threshold)

            times, found = latencies(lance_ivf, queries)
            rows.append((kind, f"LanceDB IVF_FLAT, nprobes {args.nprobes}", build, times, recall(found, truth), baseline))

            index = GalleryHashIndex(gallery)
            start = time.perf_counter()
            index.search(kind, queries[0], max_distance=threshold)  # builds
            build = time.perf_counter() - start

            def memory(q, kind=kind, threshold=threshold):
                return ids_to_rows(m.image["image_id"] for m in index.search(kind, q, max_distance=threshold))

            times, found = latencies(memory, queries)
            rows.append((kind, "GalleryHashIndex (in memory)", build, times, recall(found, truth), baseline))
            rows.append((kind, "GET /search via HTTP", 0.0, *http_latencies(tmp, kind, queries, truth), baseline))

        print(f"\n{'hash':<6}{'method':<34}{'build s':>9}{'p50 ms':>9}{'p99 ms':>9}{'recall':>8}{'p50 vs base':>13}")
        for kind, name, build, times, rec, base in rows:
            p50, p99 = np.percentile(times, 50) * 1000, np.percentile(times, 99) * 1000
            ratio = np.percentile(base, 50) / np.percentile(times, 50)
            print(f"{kind:<6}{name:<34}{build:>9.2f}{p50:>9.2f}{p99:>9.2f}{rec:>8.3f}{ratio:>12.1f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def http_latencies(uri: str, kind: str, queries: list[bytes], truth) -> tuple[list[float], float]:
    """The service as operators run it (`gallery serve`, its own process), queried over HTTP."""
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gallery", "serve", "--gallery", uri, "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/search", params={"hash": f"{kind}:{queries[0].hex()}"})  # builds the index
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

            def one(q):
                matches = client.get("/search", params={"hash": f"{kind}:{q.hex()}", "per_page": 100}).json()["matches"]
                return ids_to_rows(m["image"]["image_id"] for m in matches)

            times, found = latencies(one, queries)
    finally:
        server.terminate()
        server.wait(10)
    return times, recall(found, truth)


if __name__ == "__main__":
    main()
