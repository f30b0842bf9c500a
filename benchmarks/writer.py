"""The gallery writer alone as the gallery grows: CPU per image of GalleryWriter.write (near-
duplicate marking, appends, compaction), the part of the crawl process that grows with the table.

Images are one analyzed picture with fresh random ids and hashes (no near-duplicates, no decode),
written in the crawl's batches. With --checkout (repeatable) each checkout's code runs the same
work in turn, in a process of its own; the table gives CPU ms per image at each fifth of the
images and the ratio against the first checkout.

Measured (2 shared cores, load about 2, 10,000 images, one invocation): over the last fifth 2.01
ms an image on main at 3586b21, 1.28 (0.64x) with the near-duplicate lookup made once per batch
(NearDuplicateFinder.neighbours); over the first fifth 1.45 against 0.97.

    .venv/bin/python benchmarks/writer.py --images 10000 --checkout /path/to/main --checkout .
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

MARKS = 5


def measure(images: int) -> list[float]:
    """CPU ms per image over each fifth of `images`, with this process's code."""
    import numpy as np

    from gallery.demo import make_picture
    from indexer.analyze import analyze_image
    from indexer.faces import FaceDetector
    from indexer.hashes import ImageHashes
    from indexer.ingest import GalleryWriter
    from indexer.store import Gallery
    from tests.fixture_site import jpeg_bytes, sighting

    base = analyze_image(jpeg_bytes(make_picture(1)), detector=FaceDetector())
    rng = np.random.default_rng(1)
    folder = tempfile.mkdtemp(prefix="writer-bench-")
    try:
        writer = GalleryWriter(Gallery(folder))
        step, spent, start = images // MARKS, [], time.process_time()
        for n in range(images):
            hashes = ImageHashes(phash=rng.bytes(8), pdq=rng.bytes(32))
            image = replace(base, image_id=rng.bytes(32).hex(), hashes=hashes, regions=rng.bytes(len(base.regions)))
            writer.add(image, sighting(f"http://a.test/{n}.jpg", f"http://a.test/p{n // 20}"))
            if writer.batch_ready():
                writer.write(writer.take_batch())
            if (n + 1) % step == 0:
                now = time.process_time()
                spent.append((now - start) * 1000 / step)
                start = now
        return spent
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--checkout", type=Path, action="append", help="a checkout of the project (repeatable; default this one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, os.getcwd())
        print(json.dumps(measure(args.images)))
        return
    checkouts = args.checkout or [Path(__file__).resolve().parent.parent]
    results = {}
    for checkout in checkouts:
        run = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", "--images", str(args.images)],
            cwd=checkout, capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[str(checkout)] = json.loads(run.stdout.splitlines()[-1])
    first = next(iter(results.values()))
    marks = [f"{(i + 1) * 100 // MARKS}%" for i in range(MARKS)]
    print(f"{'checkout':40} " + " ".join(f"{m:>7}" for m in marks) + "   vs first (last fifth)")
    for name, spent in results.items():
        print(f"{name[-40:]:40} " + " ".join(f"{v:7.2f}" for v in spent) + f"   {spent[-1] / first[-1]:.2f}x")
    print(f"writer_cpu_ms_per_image: {results[str(checkouts[-1])][-1]:.2f}")


if __name__ == "__main__":
    main()
