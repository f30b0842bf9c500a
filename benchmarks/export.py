"""Export throughput on a generated gallery (default 1,000,000 sightings of 250,000 images).

Compares, in one invocation, rows per second of:
- the baseline: pyarrow writing the sightings table, read from Lance, straight to one parquet
  file (no join, no hash text, no shards, no manifest, no record),
- `gallery export --format parquet` (indexer/export): pinned read, join with images, KIND:HEX
  hashes, 100,000-row shards hashed as written, manifest, the `exports` record,
- the same to WebDataset (tar shards; the generated thumbnails are small).
Target: parquet export >= 50,000 rows/s on this machine.

    .venv/bin/python benchmarks/export.py [--sightings 1000000] [--per-image 4]
"""

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.export import ExportOptions, run_export  # noqa: E402
from indexer.store import IMAGES_SCHEMA, SIGHTINGS_SCHEMA, Gallery  # noqa: E402

BATCH = 100_000
THUMBNAIL = bytes(2_000)  # a stand-in: what is measured is moving rows, not JPEG sizes


def build_gallery(uri: str, *, sightings: int, per_image: int, rng: np.random.Generator) -> Gallery:
    gallery = Gallery(uri)
    images = max(1, sightings // per_image)
    now = datetime.now(timezone.utc)
    ts = IMAGES_SCHEMA.field("first_seen").type
    for start in range(0, images, BATCH):
        n = min(images, start + BATCH) - start
        hashes = {k: rng.integers(0, 256, (n, b), dtype=np.uint8) for k, b in (("phash", 8), ("pdq", 32))}
        columns = {
            "image_id": pa.array([f"{i:064x}" for i in range(start, start + n)]),
            **{k: pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), v.shape[1]) for k, v in hashes.items()},
            "width": pa.array(rng.integers(64, 4000, n, dtype=np.int32)),
            "height": pa.array(rng.integers(64, 4000, n, dtype=np.int32)),
            "format": pa.array(["JPEG"] * n),
            "bytes": pa.array(rng.integers(1_000, 5_000_000, n, dtype=np.int64)),
            "face_count": pa.array(rng.integers(0, 3, n, dtype=np.int32)),
            "thumbnail": pa.array([THUMBNAIL] * n, pa.binary()),
            "first_seen": pa.array([now] * n, ts),
            "last_seen": pa.array([now] * n, ts),
            "duplicate_of": pa.nulls(n, pa.string()),
        }
        gallery.images.add(pa.table(columns, schema=IMAGES_SCHEMA))
    for start in range(0, sightings, BATCH):
        n = min(sightings, start + BATCH) - start
        image = rng.integers(0, images, n)
        domains = [f"site{i % 500}.example" for i in range(start, start + n)]
        columns = {
            "sighting_id": pa.array([f"{i:064x}" for i in range(start, start + n)]),
            "image_id": pa.array([f"{i:064x}" for i in image]),
            "image_url": pa.array([f"https://{d}/img/{i}.jpg" for d, i in zip(domains, range(start, start + n))]),
            "page_url": pa.array([f"https://{d}/page/{i // 10}" for d, i in zip(domains, range(start, start + n))]),
            "domain": pa.array(domains),
            "alt_text": pa.array([f"picture {i}" for i in range(start, start + n)]),
            "license_url": pa.array(["https://creativecommons.org/licenses/by/4.0/" if i % 3 == 0 else None for i in range(n)]),
            "fetched_at": pa.array([now] * n, ts),
            "http_status": pa.array(np.full(n, 200, np.int32)),
            "rendered": pa.array(np.zeros(n, bool)),
            "policy": pa.array(["network,optout,robots,aitxt,reservations,xmp"] * n),
            "etag": pa.nulls(n, pa.string()),
            "last_modified": pa.nulls(n, pa.string()),
        }
        gallery.sightings.add(pa.table(columns, schema=SIGHTINGS_SCHEMA))
    return gallery


def baseline(gallery: Gallery, out: Path) -> int:
    table = gallery.sightings.to_lance().to_table(columns=[f.name for f in SIGHTINGS_SCHEMA])
    pq.write_table(table, out / "sightings.parquet", compression="snappy")
    return table.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--per-image", type=int, default=4)
    parser.add_argument("--skip-webdataset", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="export-bench-"))
    try:
        started = time.perf_counter()
        gallery = build_gallery(str(tmp / "g"), sightings=args.sightings, per_image=args.per_image, rng=np.random.default_rng(1))
        print(f"generated {args.sightings:,} sightings of {max(1, args.sightings // args.per_image):,} images "
              f"in {time.perf_counter() - started:.1f} s")
        runs = []
        (tmp / "base").mkdir()
        clock = time.perf_counter()
        rows = baseline(gallery, tmp / "base")
        runs.append(("pyarrow: sightings table to one parquet (baseline)", rows, time.perf_counter() - clock))
        formats = ["parquet"] + ([] if args.skip_webdataset else ["webdataset"])
        for name in formats:
            clock = time.perf_counter()
            result = run_export(gallery, ExportOptions(format=name, out=str(tmp / name)))
            assert result.complete, result.manifest["error"]
            runs.append((f"gallery export --format {name}", result.manifest["counts"]["rows"], time.perf_counter() - clock))
        base_rate = runs[0][1] / runs[0][2]
        print(f"\n{'run':<52} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'vs baseline':>11}")
        for label, count, seconds in runs:
            rate = count / seconds
            print(f"{label:<52} {count:>10,} {seconds:>8.2f} {rate:>10,.0f} {rate / base_rate:>10.2f}x")
        parquet_rate = runs[1][1] / runs[1][2]
        print(f"\nparquet export: {parquet_rate:,.0f} rows/s (target >= 50,000): {'met' if parquet_rate >= 50_000 else 'NOT met'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
