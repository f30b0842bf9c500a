"""Removal speed: one domain (about 1% of rows) with purge and verification, and a hash-only
request before purge, each next to a plain LanceDB delete with the same predicate.

Each case runs on a fresh copy of one generated gallery (N sightings, N/2 images, every image
seen twice on one of 100 domains). Prints seconds per case and the ratio against the baseline
run in the same invocation, and whether the removed rows were still on disk afterwards.

    .venv/bin/python benchmarks/removal.py [--sightings 200000] [--thumbnail-bytes 512]
    .venv/bin/python benchmarks/removal.py --sightings 1000000      # the issue's 1,000,000 / 500,000
"""

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.removal import build_request, plan_removal, process_requests, verify_purged  # noqa: E402
from indexer.store import IMAGES_SCHEMA, SIGHTINGS_SCHEMA, Gallery  # noqa: E402

DOMAINS = 100
CHUNK = 100_000  # rows per append: a few large fragments, as after a compaction


def generate(uri: str, *, sightings: int, thumbnail_bytes: int, seed: int = 0) -> None:
    gallery = Gallery(uri)
    rng = np.random.default_rng(seed)
    now = datetime.now(timezone.utc)
    images = sightings // 2
    for start in range(0, images, CHUNK // 2):
        index = np.arange(start, min(images, start + CHUNK // 2))
        n = len(index)
        ids = [hashlib.sha256(b"image %d" % i).hexdigest() for i in index]
        thumbnails = pa.Array.from_buffers(
            pa.binary(),
            n,
            [
                None,
                pa.py_buffer((np.arange(n + 1) * thumbnail_bytes).astype(np.int32)),
                pa.py_buffer(rng.bytes(n * thumbnail_bytes)),
            ],
        )
        gallery.images.add(
            pa.table(
                {
                    "image_id": ids,
                    "phash": _hashes(rng, n, 8),
                    "pdq": _hashes(rng, n, 32),
                    "width": pa.array(np.full(n, 512, np.int32)),
                    "height": pa.array(np.full(n, 384, np.int32)),
                    "format": ["JPEG"] * n,
                    "bytes": pa.array(np.full(n, 50_000, np.int64)),
                    "face_count": pa.array(np.zeros(n, np.int32)),
                    "thumbnail": thumbnails,
                    "first_seen": pa.array([now] * n, IMAGES_SCHEMA.field("first_seen").type),
                    "last_seen": pa.array([now] * n, IMAGES_SCHEMA.field("last_seen").type),
                    "duplicate_of": pa.nulls(n, pa.string()),
                },
                schema=IMAGES_SCHEMA,
            )
        )
        rows = {name: [] for name in SIGHTINGS_SCHEMA.names}
        for i, image_id in zip(index.tolist(), ids):
            domain = f"d{i % DOMAINS}.test"
            for copy in (0, 1):
                image_url = f"https://cdn.{domain}/img/{i}.jpg"
                page_url = f"https://www.{domain}/page/{i // 10}/{copy}"
                rows["sighting_id"].append(hashlib.sha256(f"{image_id}\n{image_url}\n{page_url}".encode()).hexdigest())
                rows["image_id"].append(image_id)
                rows["image_url"].append(image_url)
                rows["page_url"].append(page_url)
                rows["domain"].append(domain)
        m = len(rows["image_id"])
        rows.update(
            alt_text=[None] * m,
            license_url=[None] * m,
            fetched_at=[now] * m,
            http_status=[200] * m,
            rendered=[False] * m,
            policy=["bench"] * m,
            etag=[None] * m,
            last_modified=[None] * m,
        )
        gallery.sightings.add(pa.table(rows, schema=SIGHTINGS_SCHEMA))
    gallery.index_lookup_columns()  # as every crawl leaves it


def _hashes(rng, n: int, width: int) -> pa.Array:
    values = pa.array(rng.integers(0, 256, n * width, dtype=np.uint8))
    return pa.FixedSizeListArray.from_arrays(values, width).cast(pa.list_(pa.uint8(), width))


def on_copy(source: Path, fn):
    """Run fn(gallery) on a fresh copy of the generated gallery; time only fn."""
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        copy = Path(tmp) / "g"
        shutil.copytree(source, copy)
        gallery = Gallery(str(copy), create=False)
        start = time.perf_counter()
        detail = fn(gallery)
        return time.perf_counter() - start, detail


def left_on_disk(gallery: Gallery, request, plan) -> str:
    result = verify_purged(gallery, request, image_ids=set(plan.image_ids), sighting_ids=set(plan.sighting_ids))
    return "yes" if result.traces else "no"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sightings", type=int, default=200_000)
    parser.add_argument("--thumbnail-bytes", type=int, default=512, help="per image (real ones are ~20-40 KB)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # optimize(cleanup_older_than=0) warns, as it should

    with tempfile.TemporaryDirectory(prefix="removal-bench-") as tmp:
        source = Path(tmp) / "source"
        start = time.perf_counter()
        generate(str(source), sightings=args.sightings, thumbnail_bytes=args.thumbnail_bytes)
        print(f"generated {args.sightings:,} sightings / {args.sightings // 2:,} images in {time.perf_counter() - start:.1f}s")

        domain = "d7.test"
        domain_request = build_request([("domain", domain)], basis="opt-out")
        probe = Gallery(str(source), create=False)
        domain_plan = plan_removal(probe, domain_request)
        offset = 12_345 % (args.sightings // 2)
        target = probe.images.to_lance().to_table(columns=["image_id", "pdq"], limit=1, offset=offset).to_pylist()[0]
        hash_request = build_request([("hash", f"pdq:{bytes(target['pdq']).hex()}")], basis="copyright")
        hash_plan = plan_removal(probe, hash_request)
        sha_predicate = f"image_id = '{target['image_id']}'"
        rows = []

        def plain_domain_delete(g):
            g.sightings.delete(f"domain = '{domain}'")
            g.images.delete(f"image_id IN ({', '.join(repr(i) for i in domain_plan.image_ids)})")
            return left_on_disk(g, domain_request, domain_plan)

        def plain_domain_delete_optimize(g):
            plain_domain_delete(g)
            for table in (g.images, g.sightings):
                table.optimize(cleanup_older_than=timedelta(0))
            return left_on_disk(g, domain_request, domain_plan)

        def ours(request):
            def run(g):
                [report] = process_requests(g, [request])
                assert report.purged and report.rows_removed, report
                return report

            return run

        base, on_disk = on_copy(source, plain_domain_delete)
        rows.append(("domain: plain delete, same predicate (baseline)", base, base, on_disk))
        seconds, on_disk = on_copy(source, plain_domain_delete_optimize)
        rows.append(("domain: plain delete + optimize(cleanup 0)", seconds, base, on_disk))
        seconds, report = on_copy(source, ours(domain_request))
        rows.append(("domain: gallery remove (match..purge..verify)", seconds, base, "no"))
        stages = dict(report.timings)

        def plain_hash_delete(g):
            g.images.delete(sha_predicate)
            g.sightings.delete(sha_predicate)
            return left_on_disk(g, hash_request, hash_plan)

        hash_base, on_disk = on_copy(source, plain_hash_delete)
        rows.append(("hash: plain delete by image_id (baseline)", hash_base, hash_base, on_disk))
        seconds, hash_report = on_copy(source, ours(hash_request))
        before_purge = sum(hash_report.timings[k] for k in ("match", "tombstones", "delete"))
        rows.append(("hash pdq: gallery remove, before purge", before_purge, hash_base, "yes (until purge)"))
        rows.append(("hash pdq: gallery remove, with purge+verify", seconds, hash_base, "no"))

        matched = len(domain_plan.sighting_ids) + len(domain_plan.image_ids)
        print(
            f"domain request: {len(domain_plan.sighting_ids):,} sightings, {len(domain_plan.image_ids):,} images "
            f"({matched / (args.sightings * 1.5):.1%} of rows)"
        )
        print(f"{'case':<52}{'seconds':>9}{'vs baseline':>13}  left on disk")
        for name, elapsed, baseline, disk in rows:
            print(f"{name:<52}{elapsed:>9.3f}{elapsed / baseline:>12.1f}x  {disk}")
        print("domain stages (s): " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
        print("hash stages (s):   " + ", ".join(f"{k} {v:.3f}" for k, v in hash_report.timings.items()))


if __name__ == "__main__":
    main()
