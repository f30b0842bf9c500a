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

# A picture matches on its PDQ alone upright, as it always has. A turned or mirrored variant of
# the query is eight more tries, so there both hashes must agree. pHash alone matches small,
# heavily recompressed copies PDQ misses, but within a few bits it also matches unrelated plots
# and figures of one layout: it counts alone only when identical, with PDQ not far past its
# threshold. benchmarks/matching.py measures recall and false matches for these choices.
PHASH_ONLY_MAX_PDQ = 40


def same_picture(pdq_distance, phash_distance, *, upright, max_pdq: int = MATCH_DISTANCE["pdq"]):
    """Whether one pair's PDQ and pHash distances say "the same picture". `upright`: the query
    as given (not a turned or mirrored variant); `max_pdq`: PDQ's threshold, for a person
    widening a search. Ints, bools or numpy arrays alike."""
    by_pdq = (pdq_distance <= max_pdq) & (upright | (phash_distance <= MATCH_DISTANCE["phash"]))
    by_phash = (phash_distance == 0) & (pdq_distance <= PHASH_ONLY_MAX_PDQ)
    return by_pdq | by_phash


def both_agree(pdq_distance, phash_distance):
    """The stricter test a deletion or a crawl-time block uses: both hashes within threshold."""
    return (pdq_distance <= MATCH_DISTANCE["pdq"]) & (phash_distance <= MATCH_DISTANCE["phash"])


def describe_threshold(kind: str) -> str:
    """`pdq <= 31 of 256 bits`, for help texts and docs."""
    if kind == "sha256":
        return "sha256 exact"
    return f"{kind} <= {MATCH_DISTANCE[kind]} of {HASH_BITS[kind]} bits"
