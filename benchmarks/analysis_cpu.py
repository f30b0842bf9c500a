"""CPU per image of the analysis workers' steps (decode, hashes, region hashes, thumbnail), the
code of a baseline revision against the working tree's, in one invocation.

The files: benchmarks/throughput.py's fixture (JPEG photos, PNG screenshots, icons, duplicates,
hostile files) plus a few kinds it lacks, generated once under benchmarks/.analysis_cpu/
(git-ignored): transparent and palette PNG screenshots, GIFs, WebP photos. The baseline's
`indexer` and `robots_policy` packages are taken from git (`--baseline`, default `main`) into a
temporary folder; each side runs in a process of its own, alternating, --runs times each, and
the lower CPU of each step is kept. Face detection is left out unless --faces (its own issue).

Printed: CPU ms per file for each step (and for decode, per picture of each format), baseline
against the working tree with their ratio; then, for the pictures both sides decoded, how far the
working image's pixels and every stored hash moved (pHash, PDQ, each stored region), as a
distribution in bits, next to the match thresholds (robots_policy/match_thresholds.py).

    .venv/bin/python benchmarks/analysis_cpu.py                      # 400 fixture images, 2 runs each
    .venv/bin/python benchmarks/analysis_cpu.py --images 2000 --baseline 10d1e75 --faces

Measured (`--images 2000 --runs 2 --copies 500`, baseline main at 11cf656, 2,080 files; 2-core machine
shared with three other sessions, load 5-8): CPU ms per file, all steps but faces, 14.92 ->
11.58 (0.78). Decode 6.89 -> 5.42: per PNG 12.91 -> 7.52 (libvips decodes and shrinks the PNGs
Pillow's parsing has all there is to know of), per JPEG 5.63 -> 5.22 (the scan walk's regex).
pHash+PDQ 3.76 -> 2.45 and region hashes 3.62 -> 3.13 (PDQ sampled where its 64x64 grid reads,
indexer/pdq.py; the regions' small copy without a copy first). Working images pixel for pixel
the same; pHash, PDQ and every region's pHash bit for bit the same; region PDQs the same but
below 1% of pictures (max 2 bits) and 3 of 1,880 regions on the other side of the "flat"
quality line (PDQ's quality off by one), where a JPEG copy (q90) moves 54-64% of them (mean
1.3-1.7, max 10) and flips 0-2 of 500 per region. Earlier (10d1e75 -> eeb6c3b): libvips'
Lanczos-3 for the working size, grey and pixels made once per picture for the regions. Tried
and left out: PDQ on the 256 px copy (moves a mean 14.6 bits: its box filters follow the input
size), pHash on it (7.0% of pictures moved, mean 0.14 bits, against a copy's 6.2%, 0.12 on the
same 1,880), box or cheaper bilinear scaling for the regions (region PDQs mean 2.9-3.6 bits).
What is left: PDQ's luma and gathers (about 1.2 ms on the working image), the regions' bilinear
scaling (about 1 ms, pinned by stored hashes), JPEG decode (about 2 ms) and the copy into libvips
and its resize (about 2.5 ms).
"""

import argparse
import collections
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
EXTRA = REPO / "benchmarks" / ".analysis_cpu"
STEPS = ("sha256", "decode", "XMP reservation", "hashes (pHash+PDQ)", "region hashes", "faces", "thumbnail (pixelate + JPEG)")


# -- the files ----------------------------------------------------------------------------------


def extra_files(count: int) -> list[Path]:
    """`count` files of each kind the throughput fixture lacks (generated once)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from throughput import _screenshot

    from gallery.demo import make_picture

    folder = EXTRA / f"extra-{count}"
    if not folder.exists():
        rng = np.random.default_rng(17)
        tmp = folder.with_suffix(".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for n in range(count):
            shot = _screenshot(rng)
            rgba = shot.convert("RGBA")
            rgba.putalpha(Image.new("L", shot.size, 255).point(lambda v: v if n % 2 else 200))  # some see-through
            rgba.save(tmp / f"screen-rgba-{n}.png")
            shot.quantize(64).save(tmp / f"screen-palette-{n}.png")
            side = int(rng.integers(300, 1400))
            make_picture(1000 + n, (side, side * 3 // 4)).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp / f"gif-{n}.gif")
            make_picture(2000 + n, (side, side * 2 // 3)).save(tmp / f"photo-{n}.webp", quality=80)
        tmp.rename(folder)
    return sorted(folder.iterdir())


def all_files(images: int, extra: int) -> list[Path]:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from throughput import fixture

    root, paths = fixture(images)
    return [root / p for p in paths] + extra_files(extra)


# -- one side, in a process of its own ----------------------------------------------------------


ANALYSIS_STEPS = ("sha256", "decode", "XMP reservation", "hashes (pHash+PDQ)", "region hashes", "faces", "thumbnail (pixelate + JPEG)")


def timed_analysis(data: bytes, cpu: dict[str, float], *, limits, detector=None):
    """One file through the worker's analysis steps, each step's CPU seconds added to `cpu`
    (faces only with a `detector`); None when the decode refuses the file, else the decoded
    picture, its hashes and its region hashes. Imports whatever tree is first on sys.path."""
    from indexer.decode import ImageRejected, decode_bounded
    from indexer.faces import pixelate_faces
    from indexer.hashes import perceptual_hashes
    from indexer.regions import region_hashes
    from robots_policy.xmp import check_xmp

    def timed(step, fn):
        start = time.process_time()
        try:
            return fn()
        finally:
            cpu[step] += time.process_time() - start

    timed("sha256", lambda: hashlib.sha256(data).hexdigest())
    try:
        decoded = timed("decode", lambda: decode_bounded(data, limits))
    except ImageRejected:
        return None
    timed("XMP reservation", lambda: check_xmp(decoded.xmp))
    found = timed("hashes (pHash+PDQ)", lambda: perceptual_hashes(decoded.image))
    regions = timed("region hashes", lambda: region_hashes(decoded.image))
    boxes = timed("faces", lambda: detector.scan(decoded.image).faces) if detector else []

    def thumbnail():
        masked = pixelate_faces(decoded.image, boxes) if boxes else decoded.image
        masked.save(io.BytesIO(), "JPEG", quality=85)

    timed("thumbnail (pixelate + JPEG)", thumbnail)
    return decoded, found, regions


def run_side(tree: Path, files: list[Path], out: Path, *, faces: bool, pixels: Path | None) -> None:
    """Every step on every file with `tree`'s code; CPU seconds per step (and decode per format),
    and per decoded file its hashes, written to `out` (JSON); working images to `pixels`."""
    sys.path.insert(0, str(tree))
    from indexer.decode import DecodeLimits
    from indexer.faces import FaceDetector

    assert Path(sys.modules["indexer.decode"].__file__).is_relative_to(tree), "imported the wrong tree"
    detector = FaceDetector() if faces else None
    limits = DecodeLimits(min_width=32, min_height=32)  # as the crawl's default
    cpu = collections.defaultdict(float)
    formats = collections.Counter()
    hashes = {}
    for k, path in enumerate(files):
        decode_before = cpu["decode"]
        analysed = timed_analysis(path.read_bytes(), cpu, limits=limits, detector=detector)
        if analysed is None:
            continue
        decoded, found, regions = analysed
        cpu[f"decode {decoded.format}"] += cpu["decode"] - decode_before
        formats[decoded.format] += 1
        hashes[str(path)] = {"phash": found.phash.hex(), "pdq": found.pdq.hex(), "quality": found.pdq_quality,
                             "regions": regions.hex(), "size": decoded.image.size}
        if pixels is not None:
            np.save(pixels / f"{k}.npy", np.asarray(decoded.image))
    out.write_text(json.dumps({"cpu": cpu, "formats": formats, "files": len(files), "hashes": hashes}))


def baseline_tree(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", revision, "indexer", "robots_policy"], cwd=REPO, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def side(tree: Path, listing: Path, out: Path, *, faces: bool, pixels: Path | None) -> dict:
    command = [sys.executable, __file__, "--side", str(tree), "--listing", str(listing), "--out", str(out)]
    command += ["--faces"] * faces + (["--pixels", str(pixels)] if pixels else [])
    subprocess.run(command, cwd=tree, check=True)
    return json.loads(out.read_text())


# -- how far the hashes moved --------------------------------------------------------------------


def stored_values(entry: dict) -> dict[str, str]:
    """Every perceptual hash stored for one picture, by name, as hex; a flat region is all zeros."""
    from indexer.regions import REGION_BYTES, STORED_REGIONS

    values = {"pHash": entry["phash"], "PDQ": entry["pdq"]}
    for i, region in enumerate(STORED_REGIONS):
        packed = entry["regions"][2 * i * REGION_BYTES : 2 * (i + 1) * REGION_BYTES]
        values[f"{region} PDQ"], values[f"{region} pHash"] = packed[:64], packed[64:]
    return values


def moved(pairs: list[tuple[dict[str, str], dict[str, str]]]) -> dict[str, tuple[list[int], int]]:
    """Per stored hash: the bit distances between the pairs' values, and how many pairs had the
    value flat (zeros) on one side only (left out of the distances)."""
    found: dict[str, tuple[list[int], int]] = {}
    for a, b in pairs:
        for name in a:
            distances, flat = found.setdefault(name, ([], 0))
            if (int(a[name], 16) == 0) != (int(b[name], 16) == 0):
                found[name] = (distances, flat + 1)
            else:
                distances.append((int(a[name], 16) ^ int(b[name], 16)).bit_count())
    return found


def copies(files: list[str]) -> list[dict]:
    """What an ordinary copy does, for scale: each picture re-encoded as a JPEG (quality 90,
    full size), hashed by the working tree's code (run in this process)."""
    sys.path.insert(0, str(REPO))
    from indexer.decode import decode_bounded
    from indexer.hashes import perceptual_hashes
    from indexer.regions import region_hashes

    entries = []
    for path in files:
        full = Image.open(path)
        copy = io.BytesIO()
        full.convert("RGB").save(copy, "JPEG", quality=90, exif=full.getexif())
        image = decode_bounded(copy.getvalue()).image
        found = perceptual_hashes(image)
        entries.append({"phash": found.phash.hex(), "pdq": found.pdq.hex(), "regions": region_hashes(image).hex()})
    return entries


def summary(distances: list[int], flat: int) -> str:
    d = np.array(distances or [0])
    return f"{(d > 0).mean():>8.0%}{d.mean():>6.2f}{np.percentile(d, 99):>5.0f}{d.max():>5d}{flat:>5d}"


def compare(old: dict, new: dict, pixels: tuple[Path, Path], files: list[Path], copies_sample: int) -> None:
    from robots_policy.match_thresholds import MATCH_DISTANCE

    both = [f for f in old["hashes"] if f in new["hashes"]]
    print(f"\nhow far each stored value moved, baseline -> working tree, over the {len(both)} pictures both decoded"
          f" ({len(old['hashes']) - len(both)} only by the baseline, {len(new['hashes']) - len(both)} only by the working tree):")
    sizes = sum(old["hashes"][f]["size"] == new["hashes"][f]["size"] for f in both)
    diffs = []
    for k in range(len(files)):
        a, b = pixels[0] / f"{k}.npy", pixels[1] / f"{k}.npy"
        if a.exists() and b.exists():
            x, y = np.load(a).astype(np.int16), np.load(b).astype(np.int16)
            if x.shape == y.shape:
                diffs.append(np.abs(x - y).ravel())
    flat = np.concatenate(diffs) if diffs else np.zeros(1)
    print(f"  working image: same size {sizes}/{len(both)}; pixel |difference| (same size) mean {flat.mean():.2f}, "
          f"p99 {np.percentile(flat, 99):.0f}, max {flat.max()} grey levels")
    changed = moved([(stored_values(old["hashes"][f]), stored_values(new["hashes"][f])) for f in both])
    sample = both[:copies_sample]
    copied = moved([(stored_values(new["hashes"][f]), stored_values(c)) for f, c in zip(sample, copies(sample))])
    columns = f"{'changed':>8}{'mean':>6}{'p99':>5}{'max':>5}{'flat':>5}"
    print(f"  bits moved{'':<22}{'baseline -> working tree':^29}   {f'a JPEG copy (q90), first {len(sample)}':^29}   match at")
    print(f"  {'':<30}{columns}   {columns}")
    for name in changed:
        threshold = MATCH_DISTANCE["pdq" if name.endswith("PDQ") else "phash"]
        print(f"  {name:<30}{summary(*changed[name])}   {summary(*copied[name])}   <= {threshold}")
    print("  (flat: stored as zeros, a region too plain to hash, on one side only)")


# -- the table -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400, help="throughput fixture size (its cache is shared)")
    parser.add_argument("--extra", type=int, default=20, help="files of each kind the fixture lacks")
    parser.add_argument("--baseline", default="main", help="git revision whose indexer/ and robots_policy/ are the baseline")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--faces", action="store_true", help="time face detection too")
    parser.add_argument("--copies", type=int, default=200, help="pictures re-encoded as JPEG, for scale")
    parser.add_argument("--side", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--listing", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pixels", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        files = [Path(p) for p in json.loads(args.listing.read_text())]
        run_side(args.side, files, args.out, faces=args.faces, pixels=args.pixels)
        return

    files = all_files(args.images, args.extra)
    with tempfile.TemporaryDirectory(prefix="analysis-cpu-") as tmp_:
        tmp = Path(tmp_)
        listing = tmp / "files.json"
        listing.write_text(json.dumps([str(p) for p in files]))
        trees = {"baseline": baseline_tree(args.baseline, tmp / "baseline"), "working tree": REPO}
        pixels = {name: tmp / f"pixels-{k}" for k, name in enumerate(trees)}
        results: dict[str, list[dict]] = {name: [] for name in trees}
        for run in range(args.runs):
            for name in (trees if run % 2 == 0 else reversed(list(trees))):
                first = not results[name]
                if first:
                    pixels[name].mkdir()
                results[name].append(side(trees[name], listing, tmp / f"{name}-{run}.json", faces=args.faces,
                                          pixels=pixels[name] if first else None))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)

        n = len(files)
        old, new = results["baseline"], results["working tree"]
        formats = old[0]["formats"]
        print(f"{n} files ({args.images} of benchmarks/throughput.py's fixture, {args.extra} of each extra kind); "
              f"baseline {args.baseline}; {args.runs} runs each, alternating, lower CPU kept; "
              f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)")
        print(f"{'CPU ms':<40}{'baseline':>10}{'working':>10}{'ratio':>8}")

        def row(label: str, key: str, per: int) -> None:
            a = min(r["cpu"].get(key, 0.0) for r in old) * 1000 / max(1, per)
            b = min(r["cpu"].get(key, 0.0) for r in new) * 1000 / max(1, per)
            print(f"{label:<40}{a:>10.2f}{b:>10.2f}{(b / a if a else float('nan')):>8.2f}")

        steps = [s for s in STEPS if s != "faces" or args.faces]
        print("per file (hostile, duplicate and tiny files included):")
        for step in steps:
            row(f"  {step}", step, n)
        totals = {name: min(sum(r["cpu"].get(s, 0.0) for s in steps if s != "faces") for r in runs) for name, runs in results.items()}
        print(f"{'  = all but faces':<40}{1000 * totals['baseline'] / n:>10.2f}{1000 * totals['working tree'] / n:>10.2f}"
              f"{totals['working tree'] / totals['baseline']:>8.2f}")
        print("decode, per picture of each format:")
        for fmt, count in sorted(formats.items()):
            row(f"  {fmt} ({count})", f"decode {fmt}", count)
        compare(old[0], new[0], (pixels["baseline"], pixels["working tree"]), files, args.copies)


if __name__ == "__main__":
    main()
