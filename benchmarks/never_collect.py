"""Never-collect checks with many entries: the indexed matcher (robots_policy/never_collect.py)
against a linear scan of the same entries, run in the same invocation.

The entries mix exact URLs, URL prefixes, domains and image hashes (sha256, PDQ) the way a
gallery's tombstones plus a steward's opt-out list would. The linear baseline is what the
code did before the matcher: canonicalize the URL once, then compare it with every entry in
turn (entry values already canonical, so only the scan is measured).

    .venv/bin/python benchmarks/never_collect.py [--entries 100000] [--checks 20000]
"""

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from robots_policy.match_thresholds import MATCH_DISTANCE  # noqa: E402
from robots_policy.never_collect import Entry, NeverCollect, canonical_url, url_host  # noqa: E402

# Shares of the entries by kind.
MIX = {"url": 0.4, "url_prefix": 0.25, "domain": 0.2, "sha256": 0.1, "pdq": 0.05}


def make_entries(count: int, rng: random.Random) -> list[Entry]:
    entries = []
    for kind, share in MIX.items():
        for i in range(int(count * share)):
            host = f"h{rng.randrange(count // 10)}.test"
            if kind == "url":
                entries.append(Entry(kind, f"https://{host}/img/{i}.jpg"))
            elif kind == "url_prefix":
                entries.append(Entry(kind, f"https://{host}/dir{i}/"))
            elif kind == "domain":
                entries.append(Entry(kind, f"d{i}.test"))
            else:
                entries.append(Entry(kind, rng.randbytes(32).hex()))
    return entries


def make_urls(count: int, entries: list[Entry], rng: random.Random) -> list[str]:
    """A third hit an entry (exactly, under a prefix, on a subdomain); the rest miss."""
    urls = []
    url_entries = [e for e in entries if e.kind in ("url", "url_prefix", "domain")]
    for i in range(count):
        if i % 3 == 0:
            entry = rng.choice(url_entries)
            urls.append(
                {"url": entry.value, "url_prefix": entry.value + "a.jpg", "domain": f"https://cdn.{entry.value}/x.jpg"}[entry.kind]
            )
        else:
            urls.append(f"https://h{rng.randrange(10_000)}.test/img/miss{i}.jpg")
    return urls


class LinearScan:
    """The baseline: every entry compared in turn."""

    def __init__(self, entries: list[Entry]):
        self.entries = [
            Entry(e.kind, canonical_url(e.value, prefix=e.kind == "url_prefix") if e.kind in ("url", "url_prefix") else e.value)
            for e in entries
        ]

    def blocks_url(self, url: str) -> bool:
        canonical, host = canonical_url(url), url_host(url)
        for entry in self.entries:
            if entry.kind == "url" and canonical == entry.value:
                return True
            if entry.kind == "url_prefix" and canonical.startswith(entry.value):
                return True
            if entry.kind == "domain" and (host == entry.value or host.endswith("." + entry.value)):
                return True
        return False

    def blocks_image(self, sha256: str, pdq: bytes) -> bool:
        value = int.from_bytes(pdq, "big")
        for entry in self.entries:
            if entry.kind == "sha256" and entry.value == sha256:
                return True
            if entry.kind == "pdq" and (int(entry.value, 16) ^ value).bit_count() <= MATCH_DISTANCE["pdq"]:
                return True
        return False


def rate(fn, items) -> tuple[float, int]:
    start = time.perf_counter()
    hits = sum(1 for item in items if fn(item))
    return len(items) / (time.perf_counter() - start), hits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--checks", type=int, default=20_000, help="URL and image checks for the matcher")
    parser.add_argument("--linear-checks", type=int, default=300, help="for the (slow) linear baseline")
    args = parser.parse_args()
    rng = random.Random(14)
    entries = make_entries(args.entries, rng)
    urls = make_urls(args.checks, entries, rng)
    images = [(rng.randbytes(32).hex(), np.random.default_rng(i).bytes(32)) for i in range(args.checks // 10)]

    start = time.perf_counter()
    matcher = NeverCollect(entries)
    build = time.perf_counter() - start
    start = time.perf_counter()
    linear = LinearScan(entries)
    linear_build = time.perf_counter() - start

    rows = []
    base_url, base_url_hits = rate(linear.blocks_url, urls[: args.linear_checks])
    ours_url, _ = rate(matcher.blocks_url, urls)
    _, check_hits = rate(matcher.blocks_url, urls[: args.linear_checks])
    assert check_hits == base_url_hits, "matcher and linear scan disagree"
    rows.append(("URL: linear scan (baseline)", base_url, base_url))
    rows.append(("URL: indexed matcher", ours_url, base_url))
    base_image, _ = rate(lambda i: linear.blocks_image(*i), images[: max(1, args.linear_checks // 10)])
    ours_image, _ = rate(lambda i: matcher.image_match(sha256=i[0], pdq=i[1]) is not None, images)
    rows.append(("image (sha256 + PDQ): linear scan (baseline)", base_image, base_image))
    rows.append(("image (sha256 + PDQ): indexed matcher", ours_image, base_image))

    print(f"{len(entries):,} entries ({', '.join(f'{k} {v:.0%}' for k, v in MIX.items())}); "
          f"built in {build:.2f}s (linear: {linear_build:.2f}s)")
    print(f"{'case':<48}{'checks/s':>12}{'vs baseline':>13}")
    for name, per_second, baseline in rows:
        print(f"{name:<48}{per_second:>12,.0f}{per_second / baseline:>12.0f}x")


if __name__ == "__main__":
    main()
