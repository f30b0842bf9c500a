"""Indexer throughput: analysis (decode, hashes, faces, thumbnail) and gallery appends.

Prints a table of images/s, each as a ratio against the baseline run in the same invocation:
analysis inline in one process vs the worker pool, and appends of 1 row vs batched appends.

    .venv/bin/python benchmarks/indexer_throughput.py [--images 200]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gallery.demo import make_picture  # noqa: E402
from indexer.analyze import Rejected, analyze_image  # noqa: E402
from indexer.faces import FaceDetector  # noqa: E402
from indexer.ingest import GalleryWriter  # noqa: E402
from indexer.store import Gallery  # noqa: E402
from indexer.workers import AnalyzerPool  # noqa: E402
from tests.fixture_site import jpeg_bytes, sighting  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    images = [jpeg_bytes(make_picture(seed, (1024, 768))) for seed in range(args.images)]
    rows = []

    detector = FaceDetector()
    analyzed = []
    inline = timed(lambda: analyzed.extend(analyze_image(data, detector=detector) for data in images))
    rows.append(("analyze, inline (baseline)", inline, inline))
    for workers in (1, 2):
        pool = AnalyzerPool(workers=workers)
        pool.submit(images[0]).result()  # warm-up: process start and model load
        elapsed = timed(lambda: [f.result() for f in [pool.submit(data) for data in images]])
        pool.close()
        rows.append((f"analyze, pool of {workers}", elapsed, inline))
    assert not any(isinstance(a, Rejected) for a in analyzed)

    def ingest(batch_size: int) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            writer = GalleryWriter(Gallery(tmp), batch_size=batch_size)

            def run():
                for index, image in enumerate(analyzed):
                    writer.add(image, sighting(f"http://bench.test/{index}.jpg", "http://bench.test/"))
                    if writer.batch_ready():
                        writer.write(writer.take_batch())
                writer.write(writer.take_batch())

            return timed(run)

    one = ingest(1)
    rows.append(("append, batch of 1 (baseline)", one, one))
    for size in (16, 64):
        rows.append((f"append, batch of {size}", ingest(size), one))

    print(f"{'case':<32}{'images/s':>10}{'vs baseline':>13}")
    for name, elapsed, baseline in rows:
        print(f"{name:<32}{len(images) / elapsed:>10.1f}{baseline / elapsed:>12.2f}x")



if __name__ == "__main__":
    main()
