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

# pHash alone matches copies PDQ misses (small copies, heavy recompression), but pHash's 64 bits
# also land close on unrelated pictures of one layout (plots, dialogs): a pHash match counts
# only when PDQ is at least this close too (unrelated pictures sit near 128 of 256).
# benchmarks/matching.py measures recall and false matches for it.
PHASH_MATCH_MAX_PDQ = 80


def same_picture(pdq_distance, phash_distance, *, max_pdq: int = MATCH_DISTANCE["pdq"]):
    """Whether one pair's PDQ and pHash distances say "the same picture": PDQ within its
    threshold (`max_pdq`, for a person widening a search), or pHash within its own with PDQ not
    far off. Ints or numpy arrays alike."""
    by_phash = (phash_distance <= MATCH_DISTANCE["phash"]) & (pdq_distance <= PHASH_MATCH_MAX_PDQ)
    return (pdq_distance <= max_pdq) | by_phash


def both_agree(pdq_distance, phash_distance):
    """The stricter test a deletion or a crawl-time block uses: both hashes within threshold."""
    return (pdq_distance <= MATCH_DISTANCE["pdq"]) & (phash_distance <= MATCH_DISTANCE["phash"])


def describe_threshold(kind: str) -> str:
    """`pdq <= 31 of 256 bits`, for help texts and docs."""
    if kind == "sha256":
        return "sha256 exact"
    return f"{kind} <= {MATCH_DISTANCE[kind]} of {HASH_BITS[kind]} bits"
