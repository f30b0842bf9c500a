"""One bounded decode per image: limits on bytes and pixels, JPEG draft mode, PNG pixels from
libvips where Pillow's parsing has all there is to know, a Lanczos resize to the working size
(libvips), RGB out.

Indexing and search queries both decode through `decode_bounded`, so the perceptual
hashes of the same picture agree no matter which side computed them.
"""

import io
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from indexer.decode_budget import DecodeBudget, OverBudget, check_budget

# Longest side we decode to. Thumbnails, hashes and face detection all work at this size.
WORKING_SIZE = 512


class ImageRejected(Exception):
    """An image we will not store; `reason` is a short token for stats (indexer/skipped/<reason>)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000  # width × height of the largest frame, read from the file's own structure
    max_scans: int = 64  # JPEG scans (see DecodeBudget)
    max_scan_pixels: int = 1_000_000_000  # JPEG scans × pixels (see DecodeBudget)
    # Narrower or shorter than this, read from the header (as Scrapy's IMAGES_MIN_WIDTH/HEIGHT):
    # a spacer or an icon, skipped as "too_small" before any decode. 0: no minimum (a search query).
    min_width: int = 0
    min_height: int = 0

    def budget(self) -> DecodeBudget:
        return DecodeBudget(max_pixels=self.max_pixels, max_scans=self.max_scans, max_scan_pixels=self.max_scan_pixels)


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, longest side <= WORKING_SIZE
    format: str  # e.g. "JPEG", "PNG"
    width: int  # of the original, as shown (EXIF orientation applied)
    height: int
    xmp: bytes  # raw XMP packet if the file carries one (rights metadata is read from it)
    # What was decoded other than asked, each a short token for stats (indexer/notes/<note>):
    # "animated_first_frame" (only the first frame is analysed and stored), "exif_orientation_invalid".
    notes: tuple[str, ...] = ()
    has_alpha: bool = False  # transparency was flattened (onto `background`)


WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def decode_bounded(data: bytes, limits: DecodeLimits = DecodeLimits(), *, background: tuple[int, int, int] = WHITE) -> DecodedImage:
    """`background`: what transparency is flattened onto. The gallery stores white (as a browser
    shows it); a search query also tries black, as a JPEG copy of a transparent picture may be."""
    if not data:
        raise ImageRejected("empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes")
    try:
        # Every frame's true size and every JPEG scan, before Pillow allocates anything.
        check_budget(data, limits.budget())
    except OverBudget as exc:
        raise ImageRejected(exc.reason, exc.detail) from None
    try:
        with warnings.catch_warnings():
            # PIL warns before it raises on bombs; we apply our own, stricter limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0 or width * height > limits.max_pixels:
                raise ImageRejected("too_many_pixels", f"{width}x{height}")
            if width < limits.min_width or height < limits.min_height:
                raise ImageRejected("too_small", f"{width}x{height}")
            fmt = img.format or "unknown"
            xmp = _xmp_packet(img)
            if fmt == "JPEG":
                # Draft mode decodes at 1/2, 1/4 or 1/8 scale straight from the DCT: far less
                # CPU and memory, and never below the requested size. (Asked for the picture's
                # own fitted size instead, more photos would scale down, but text in them comes
                # out several grey levels off: tests/indexer/test_decode.py.)
                img.draft("RGB", (WORKING_SIZE, WORKING_SIZE))
            img.seek(0)  # first frame of animations
            pixels = _png_pixels(data, img) if fmt == "PNG" else None
            if pixels is None:
                pixels = img
                img.load()
            if pixels.width * pixels.height > limits.max_pixels:
                # A format the walk does not know, whose header lied about the size (the decode
                # itself is bounded in time and memory by the worker that runs it).
                raise ImageRejected("too_many_pixels", f"decoded as {pixels.width}x{pixels.height}")
            # Pillow's getexif decodes a PNG it has not decoded, for an eXIf chunk after the pixels;
            # _png_pixels took only PNGs that have none.
            orientation, notes = _orientation(img) if pixels is img or "exif" in img.info else (1, ())
            if getattr(img, "is_animated", False) and fmt != "MPO":  # MPO: a phone's photo plus previews
                notes += ("animated_first_frame",)
    except ImageRejected:
        raise
    except UnidentifiedImageError as exc:
        # Pillow's text names the Python object it read from: nothing a user can act on.
        raise ImageRejected("not_an_image", "not a recognised image format") from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", _plain(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated or corrupt data: PIL raises OSError ("image file is truncated", "broken data stream").
        raise ImageRejected("corrupt", _plain(exc)) from exc
    has_alpha = _has_alpha(img)
    img = _flattened(_shrunk(_resizable(pixels)), background)
    if orientation in _TRANSPOSE:
        # Upright as a browser shows it, for the detector, the thumbnail and both sides' hashes.
        img = img.transpose(_TRANSPOSE[orientation])
        if orientation >= 5:
            width, height = height, width
    return DecodedImage(image=img, format=fmt, width=width, height=height, xmp=xmp, notes=notes, has_alpha=has_alpha)


def _plain(exc: Exception) -> str:
    """An exception's text without the reprs of Python objects (`<_io.BytesIO object at 0x…>`)
    that some of Pillow's messages carry: shown to people in the CLI and the API."""
    return re.sub(r"\s*<[\w.]+ object at 0x[0-9a-f]+>", "", str(exc)).strip() or type(exc).__name__


# EXIF orientation -> the transpose that shows the picture upright (1 is upright already).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _png_pixels(data: bytes, img: Image.Image) -> Image.Image | None:
    """The pixels of a PNG that Pillow has opened, decoded by libvips (libpng and zlib-ng: about
    half of Pillow's CPU), in the mode `_resizable` would make of Pillow's (opaque ones already
    shrunk to the working size, as `_shrunk` would); None where Pillow
    decodes it: a picture Pillow would learn more from by decoding (an animation, any chunk
    after the image data, EXIF it reads lazily), 16-bit or fewer bits of grey, and any file
    libvips finds fault with (Pillow's own verdict, accept or refuse, stands for those)."""
    if getattr(img, "is_animated", False) or img.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        return None
    if "exif" not in img.info and img.info.keys() & {"Raw profile type exif", "XML:com.adobe.xmp"}:
        return None  # Pillow reads an orientation from these after decoding
    depth, colour = data[24], data[25]  # IHDR, always the first chunk
    if depth != 8 and colour != 3:  # palettes of any depth expand to 8-bit colours
        return None
    if not _only_image_data_after_header(data):
        return None
    bands = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}.get(img.mode) or (4 if _has_alpha(img) else 3)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[bands]
    pyvips = _pyvips()
    try:
        # Random access: read sequentially, a few rows come out of the resize a level or two off.
        decoded = pyvips.Image.pngload_buffer(data, access="random", fail_on="warning")
        # One band more: the alpha of a tRNS colour key, which Pillow's RGB and L modes leave out.
        keyed = decoded.bands == bands + 1 and bands in (1, 3)
        if decoded.format != "uchar" or (decoded.width, decoded.height) != img.size or not (decoded.bands == bands or keyed):
            return None
        if keyed:
            decoded = decoded.extract_band(0, n=bands)
        size = fitted_size(*img.size)
        if mode in ("RGB", "L") and size != img.size:
            # Nothing to premultiply: shrunk as `_shrunk` would, straight from the decoder.
            return _vips_resized(decoded, size, mode)
        raw = decoded.write_to_memory()
    except pyvips.Error:
        return None
    return Image.frombuffer(mode, (decoded.width, decoded.height), raw, "raw", mode, 0, 1)


def _only_image_data_after_header(data: bytes) -> bool:
    """From the first IDAT on, only IDAT chunks and then IEND, ending the file."""
    pos, seen_data = 8, False
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind == b"IEND":
            return seen_data and end == len(data)
        if kind == b"IDAT":
            seen_data = True
        elif seen_data:
            return False
        pos = end
    return False


def _pyvips():
    import pyvips  # imported where used: commands that only read the gallery skip it

    pyvips.cache_set_max(0)  # libvips keeps recent results by default: memory we never read again
    pyvips.concurrency_set(1)  # the worker pool runs one picture per core already
    return pyvips


def _orientation(img: Image.Image) -> tuple[int, tuple[str, ...]]:
    """The EXIF orientation; a tag that is missing is 1, one that is unreadable or out of range
    is 1 too, and noted: the picture is still stored, as its pixels lie."""
    try:
        value = img.getexif().get(0x0112, 1)  # 0x0112: Orientation
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError):  # PIL's EXIF parser on broken IFDs
        return 1, ("exif_orientation_invalid",)
    if isinstance(value, int) and 1 <= value <= 8:
        return value, ()
    return 1, ("exif_orientation_invalid",)


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def _shrunk(img: Image.Image) -> Image.Image:
    """The picture fitted within WORKING_SIZE a side, by a Lanczos-3 resize in libvips: a third
    of Pillow's CPU, pixels within a grey level of Pillow's. Shrunk before the flattening to RGB,
    in as few channels as the picture has. The filter is pinned: a cheaper one (bicubic, box
    steps) moves the hashes of text and the face detector's scores (benchmarks/analysis_cpu.py,
    tests/indexer/test_faces.py)."""
    size = fitted_size(*img.size)
    if size == img.size:
        return img
    pyvips = _pyvips()
    # See-through pixels resized premultiplied, as Pillow does, so their colours do not bleed.
    premultiplied = {"RGBA": "RGBa", "LA": "La"}.get(img.mode)
    source = img.convert(premultiplied) if premultiplied else img
    pixels = pyvips.Image.new_from_memory(source.tobytes(), img.width, img.height, len(source.getbands()), "uchar")
    shrunk = _vips_resized(pixels, size, source.mode)
    return shrunk.convert(img.mode) if premultiplied else shrunk


def _vips_resized(pixels, size: tuple[int, int], mode: str) -> Image.Image:
    """libvips' Lanczos-3 resize of `pixels` (a pyvips image) to `size`, as a Pillow image of `mode`."""
    pixels = pixels.resize(size[0] / pixels.width, vscale=size[1] / pixels.height, kernel="lanczos3")
    shrunk = Image.frombytes(mode, (pixels.width, pixels.height), pixels.write_to_memory())
    if shrunk.size != size:  # libvips rounded a size the other way: a pixel more or less
        shrunk = shrunk.resize(size, Image.Resampling.LANCZOS)
    return shrunk


def fitted_size(width: int, height: int, side: int = WORKING_SIZE) -> tuple[int, int]:
    """The size Pillow's `thumbnail((side, side))` gives a picture (the aspect ratio's nearest
    whole size), as galleries stored before the resize moved to libvips; the hashes' smaller copy
    (indexer/hashes.py) is fitted the same way."""
    if width <= side and height <= side:
        return width, height
    aspect = width / height
    if aspect >= 1:
        near = (math.floor(side / aspect), math.ceil(side / aspect))
        return side, max(1, min(near, key=lambda n: abs(aspect - side / n) if n else 0))
    near = (math.floor(side * aspect), math.ceil(side * aspect))
    return max(1, min(near, key=lambda n: abs(aspect - n / side))), side


def _resizable(img: Image.Image) -> Image.Image:
    """The picture in a mode `_shrunk` takes: RGB, L, or RGBA and LA (resized premultiplied, so
    flattening after the resize gives what flattening before would)."""
    if img.mode in ("RGB", "L", "RGBA", "LA"):
        return img
    if img.mode.startswith("I") or img.mode == "F":
        # 16-bit (and 32-bit) grey: PIL's conversion clips at 255, so nearly every picture
        # would turn white; scale 16-bit ranges down instead.
        pixels = np.asarray(img, dtype=np.float64)
        if pixels.size and pixels.max() > 255:
            pixels = pixels / 257
        return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return img.convert("RGBA" if _has_alpha(img) else "RGB")  # palettes resize only by nearest pixel


def _flattened(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB, transparency laid over `background`."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def _xmp_packet(img: Image.Image) -> bytes:
    raw = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or b""
    return raw.encode("utf-8", "replace") if isinstance(raw, str) else bytes(raw)
