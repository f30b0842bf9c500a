"""PDQ, Meta's 256-bit perceptual hash, as its reference defines it (luma; two passes of box
filters along each axis; 64x64 samples; the 16x16 lowest DCT frequencies but the first; a bit
for each above their median), computed only where the samples are read.

The reference (the pdqhash package) filters every pixel of the picture and then keeps 64x64 of
them. The filters are linear, so each kept value is a fixed weighted sum of the few pixels around
it along each axis: two gathers. Same hashes as the reference up to float rounding, which can
tip its quality score by one (tests/indexer/test_hashes.py; benchmarks/analysis_cpu.py measures
what that moves); pictures under 64 px a side go to the reference itself."""

import functools

import numpy as np

GRID = 64  # samples a side


@functools.lru_cache(maxsize=1024)
def _taps(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's two box passes along an axis of n pixels, read at its GRID samples, as
    (GRID, taps) pixel indices and weights. One pass of window w averages pixels o-(w-h) ..
    o+h-1, h = (w+2)//2, clipped at the ends; the window is n/128 rounded up; sample k reads
    pixel int((k+0.5)*n/GRID)."""
    window = (n + 2 * GRID - 1) // (2 * GRID)
    half = (window + 2) // 2
    pixels = np.arange(n)
    first = np.maximum(0, pixels - (window - half))
    last = np.minimum(n - 1, pixels + half - 1)
    samples = ((np.arange(GRID) + 0.5) * n / GRID).astype(int)
    # Two passes reach at most 2w-1 pixels; taps past the end keep weight 0.
    index = first[first[samples]][:, None] + np.arange(2 * window)
    weights = np.zeros(index.shape)
    for k, sample in enumerate(samples):
        for pixel in range(first[sample], last[sample] + 1):
            start = first[pixel] - index[k, 0]
            share = 1 / ((last[sample] - first[sample] + 1) * (last[pixel] - first[pixel] + 1))
            weights[k, start : start + last[pixel] - first[pixel] + 1] += share
    return np.minimum(index, n - 1), weights


# Rows 1-16 of the 64-point DCT-II (the first, the mean, is left out), as the reference scales it.
_DCT = np.sqrt(2 / GRID) * np.cos(np.pi / 2 / GRID * np.arange(1, 17)[:, None] * (2 * np.arange(GRID) + 1))


def _grid(rgb: np.ndarray) -> np.ndarray:
    # The luma as the pdqhash binding makes it (float64 weights, then float32).
    luma = (rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114).astype(np.float32)
    # Gathers and sums, not matrix products: a multi-threaded BLAS spends more CPU than it saves.
    index, weights = _taps(luma.shape[1])
    across = (luma[:, index] * weights).sum(axis=2)  # (rows, GRID)
    index, weights = _taps(luma.shape[0])
    return (across[index] * weights[:, :, None]).sum(axis=1).astype(np.float32)


def _quality(grid: np.ndarray) -> int:
    """The reference's 0-100 detail score: significant steps between neighbouring samples, in
    its float32 arithmetic."""
    down = np.trunc((grid[:-1] - grid[1:]) * np.float32(100) / np.float32(255))
    across = np.trunc((grid[:, :-1] - grid[:, 1:]) * np.float32(100) / np.float32(255))
    return min(100, int(np.abs(down).astype(np.int64).sum() + np.abs(across).astype(np.int64).sum()) // 90)


def _bits(frequencies: np.ndarray) -> np.ndarray:
    """256 bits, as pdqhash gives them: bit k (frequency row k // 16, column k % 16) is whether
    that frequency is above the median (the lower middle value), last bit first."""
    median = np.partition(frequencies.ravel(), 127)[127]
    return (frequencies.ravel() > median)[::-1].astype(np.uint8)


def _frequencies(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    grid = _grid(rgb)
    return _DCT @ grid.astype(np.float64) @ _DCT.T, _quality(grid)


def _tiny(rgb: np.ndarray) -> bool:
    """Fewer pixels than samples along a side: the reference repeats pixels, so many of its
    frequencies are rounding noise that only its own float32 sums reproduce. The reference
    itself is cheap at this size."""
    return min(rgb.shape[:2]) < GRID


def pdq(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """PDQ's 256 bits (uint8 0/1, pdqhash's order) and quality of RGB pixels (rows, columns, 3)."""
    if _tiny(rgb):
        import pdqhash

        bits, quality = pdqhash.compute(rgb)
        return np.asarray(bits, np.uint8), int(quality)
    frequencies, quality = _frequencies(rgb)
    return _bits(frequencies), quality


# The picture turned or mirrored, done on its DCT frequencies (i, j): a mirror negates the odd
# frequencies along its axis, a quarter turn also swaps the axes. In pdqhash.compute_dihedral's
# order (indexer/hashes.py's DIHEDRAL names them).
_SIGN = np.where(np.arange(1, 17) % 2 == 1, -1.0, 1.0)
_DIHEDRAL_FREQUENCIES = (
    lambda f: f,
    lambda f: (f * _SIGN[None, :]).T,
    lambda f: f * _SIGN[:, None] * _SIGN[None, :],
    lambda f: (f * _SIGN[:, None]).T,
    lambda f: f * _SIGN[:, None],
    lambda f: f * _SIGN[None, :],
    lambda f: f.T,
    lambda f: (f * _SIGN[:, None] * _SIGN[None, :]).T,
)


def pdq_dihedral(rgb: np.ndarray) -> tuple[list[np.ndarray], int]:
    """`pdq` of the picture turned and mirrored the eight ways, in pdqhash.compute_dihedral's order."""
    if _tiny(rgb):
        import pdqhash

        turned, quality = pdqhash.compute_dihedral(rgb)
        return [np.asarray(bits, np.uint8) for bits in turned], int(quality)
    frequencies, quality = _frequencies(rgb)
    return [_bits(turn(frequencies)) for turn in _DIHEDRAL_FREQUENCIES], quality
