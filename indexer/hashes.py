"""Perceptual and exact hashes, and their `KIND:HEX` text form."""

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from indexer.decode import fitted_size
from indexer.pdq import pdq, pdq_dihedral
from robots_policy.match_thresholds import LOW_INFORMATION_PDQ_QUALITY

HASH_BITS = {"phash": 64, "pdq": 256, "sha256": 256}


@dataclass(frozen=True)
class ImageHashes:
    phash: bytes  # 8 bytes
    pdq: bytes  # 32 bytes
    pdq_quality: int = 100  # PDQ's own detail score, 0-100; not stored (a query or a new image uses it)

    @property
    def low_information(self) -> bool:
        """Flat or near blank: its perceptual hashes would match every other such picture."""
        return self.pdq_quality < LOW_INFORMATION_PDQ_QUALITY


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The region hashes (indexer/regions.py) start from the picture scaled down to this longest side:
# PDQ and pHash look at 64 and 32 pixels a side anyway, and six of them stay cheap. The whole
# picture's hashes do not: PDQ's box filters follow the input's size, so a smaller input moves
# many of its bits, and pHash from the smaller grey moved a few more than a JPEG copy does
# (benchmarks/analysis_cpu.py).
SMALL_SIDE = 256


@dataclass(frozen=True)
class HashInput:
    """A decoded picture and its copy scaled down to SMALL_SIDE (bilinear), with that copy's
    pixels and grey image: made once per picture for all of its region hashes."""

    image: Image.Image  # RGB, as decoded
    small: Image.Image
    small_rgb: np.ndarray
    small_grey: Image.Image


def hash_input(img: Image.Image | HashInput) -> HashInput:
    if isinstance(img, HashInput):
        return img
    size = fitted_size(img.width, img.height, SMALL_SIDE)
    # As Pillow's thumbnail((SMALL_SIDE, SMALL_SIDE), BILINEAR) scales it, without its copy.
    small = img if size == img.size else img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return HashInput(image=img, small=small, small_rgb=np.asarray(small), small_grey=small.convert("L"))


def perceptual_hashes(img: Image.Image) -> ImageHashes:
    """pHash and PDQ of an RGB image already decoded by `decode_bounded`."""
    return hashes_of(np.asarray(img), img.convert("L"))


def hashes_of(rgb: np.ndarray, grey: Image.Image) -> ImageHashes:
    """PDQ of one picture given as its RGB pixels (rows, columns, 3; a view into a larger
    picture will do) and pHash of its Pillow grey ("L") image (the same picture, at any size):
    callers hashing several parts of one picture convert it once (indexer/regions.py)."""
    pdq_bits, quality = pdq(rgb)
    return ImageHashes(
        phash=np.packbits(_phash_bits(_phash_thumbnail(grey))).tobytes(),
        pdq=np.packbits(pdq_bits).tobytes(),
        pdq_quality=int(quality),
    )


def _phash_thumbnail(grey: Image.Image) -> np.ndarray:
    """The 32x32 grey thumbnail pHash starts from, as imagehash.phash makes it."""
    return np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS))


def _phash_bits(thumbnail: np.ndarray) -> np.ndarray:
    """pHash's 64 bits (row by row) of a 32x32 grey thumbnail, as imagehash.phash computes them:
    the lowest 8x8 DCT coefficients over their median."""
    from scipy.fftpack import dct

    coefficients = dct(dct(thumbnail, axis=0), axis=1)[:8, :8]
    return (coefficients > np.median(coefficients)).flatten().astype(np.uint8)


# The eight ways a picture can be turned or mirrored, in indexer/pdq.py's pdq_dihedral order, each
# with the numpy operation on a (rows, columns) array that does it (PIL's Transpose names;
# rotations counterclockwise, as PIL and numpy turn).
DIHEDRAL = {
    "identity": lambda a: a,
    "rotate_90": lambda a: np.rot90(a, 1),
    "rotate_180": lambda a: np.rot90(a, 2),
    "rotate_270": lambda a: np.rot90(a, 3),
    "flip_top_bottom": lambda a: a[::-1],
    "flip_left_right": lambda a: a[:, ::-1],
    "transpose": lambda a: a.swapaxes(0, 1),
    "transverse": lambda a: np.rot90(a, 2).swapaxes(0, 1),
}


def dihedral_hashes(img: Image.Image) -> dict[str, ImageHashes]:
    """pHash and PDQ of the picture turned and mirrored every way (`DIHEDRAL`), for a query: a
    stored copy that was mirrored or turned matches one of them. "identity" is exactly
    `perceptual_hashes(img)`. PDQ turns its frequencies, computed once; pHash turns its 32x32
    grey thumbnail, as imagehash.phash makes it."""
    pdq_bits, quality = pdq_dihedral(np.asarray(img))
    grey = _phash_thumbnail(img.convert("L"))
    found = {}
    for (name, turn), bits in zip(DIHEDRAL.items(), pdq_bits, strict=True):
        found[name] = ImageHashes(
            phash=np.packbits(_phash_bits(np.ascontiguousarray(turn(grey)))).tobytes(),
            pdq=np.packbits(bits).tobytes(),
            pdq_quality=int(quality),
        )
    return found


def format_hash(kind: str, value: bytes | str) -> str:
    hexed = value if isinstance(value, str) else value.hex()
    return f"{kind}:{hexed}"


def parse_hash(text: str) -> tuple[str, bytes]:
    """Parse `KIND:HEX`; raise ValueError with a one-line reason if it is not one."""
    kind, sep, hexed = text.strip().partition(":")
    if not sep:
        raise ValueError(f"hash {text!r} has no kind: write it as phash:HEX, pdq:HEX or sha256:HEX")
    kind = kind.lower()
    if kind not in HASH_BITS:
        raise ValueError(f"unknown hash kind {kind!r}: expected one of {', '.join(HASH_BITS)}")
    want = HASH_BITS[kind] // 4
    if len(hexed) != want:
        raise ValueError(f"{kind} hash must be {want} hex digits, got {len(hexed)}")
    try:
        return kind, bytes.fromhex(hexed)
    except ValueError:
        raise ValueError(f"{kind} hash is not hexadecimal: {hexed!r}") from None


def hamming(a: bytes, b: bytes) -> int:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
