"""The one table of how close two image hashes must be to be called the same picture. Search,
removal, tombstones, opt-outs and near-duplicate marking all read it, and the CLI help is
written from it."""

# Largest Hamming distance still called "the same picture", per hash kind. PDQ 31 of 256 is
# the confident-match threshold of hash-sharing programmes; pHash 8 of 64 keeps resizes and
# recompressions while distinct pictures sit near 32; sha256 is the exact bytes.
MATCH_DISTANCE: dict[str, int] = {"pdq": 31, "phash": 8, "sha256": 0}
HASH_BITS: dict[str, int] = {"pdq": 256, "phash": 64, "sha256": 256}

# PDQ's quality score (0-100) says how much detail a picture has. Below this it is flat or near
# blank (a white page, a formula on white): every such picture hashes alike, so its perceptual
# hashes say nothing, and it matches by its exact bytes only.
LOW_INFORMATION_PDQ_QUALITY = 50


def describe_threshold(kind: str) -> str:
    """`pdq <= 31 of 256 bits`, for help texts and docs."""
    if kind == "sha256":
        return "sha256 exact"
    return f"{kind} <= {MATCH_DISTANCE[kind]} of {HASH_BITS[kind]} bits"
