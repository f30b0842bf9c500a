"""What a file will cost to decode, read from its own structure before any pixel is allocated.

Pillow sizes its buffers from one header (an ICO's directory, a GIF's screen, a JPEG's SOF)
and decodes whatever follows; a file can declare a small picture and hold a huge one, or hold
thousands of JPEG scans, each a full pass over every coefficient. So the cheap walk here reads
every frame's true size and counts JPEG scans; `decode_bounded` refuses before it decodes.

A walk that meets a truncated or inconsistent structure stops without a verdict: the decoder
then says "corrupt" itself. Only positive evidence of excess is refused here.
"""

import re
import struct
from dataclasses import dataclass, field


class OverBudget(Exception):
    """The file would cost more than the budget; `reason` is the stats token."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodeBudget:
    max_pixels: int
    # libjpeg's own progressive scripts write 6 (grey) to 10 (colour) scans, CMYK about 24, and
    # optimising encoders (mozjpeg) stay in that range. 64 leaves room for any real encoder while
    # a scan bomb needs hundreds to thousands; libjpeg-turbo's `djpeg -maxscans` is the model.
    max_scans: int = 64
    # Each scan is a pass over every block of the picture, so the cost is scans × pixels: a
    # 16 MP JPEG at 64 scans already decodes for seconds. 10 scans over the 50 MP pixel limit
    # (a real progressive photo at the largest size we take) times 2 for margin.
    max_scan_pixels: int = 1_000_000_000
    # Frames whose headers we read; we decode only the first, but a lying later frame is refused.
    max_frames: int = 10_000


@dataclass
class Structure:
    """What the walk found (for tests and messages)."""

    frames: list[tuple[int, int]] = field(default_factory=list)  # (width, height) of every frame
    scans: int = 0  # JPEG only


def check_budget(data: bytes, budget: DecodeBudget) -> Structure:
    """Raise OverBudget when a frame exceeds the pixel budget or a JPEG has too many scans."""
    walker = _walker_for(data)
    found = Structure()
    if walker is None:
        return found  # a format we do not walk: the decoder's own header check and the worker's bounds hold
    try:
        walker(data, found, budget)
    except (struct.error, IndexError, ValueError):
        pass  # structure cut short or inconsistent: the decoder will call it corrupt
    return found


def _walker_for(data: bytes):
    if data[:2] == b"\xff\xd8":
        return _walk_jpeg
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _walk_png
    if data[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00"):
        return _walk_ico
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _walk_tiff
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _walk_webp
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _walk_gif
    return None


def _frame(found: Structure, budget: DecodeBudget, width: int, height: int, what: str) -> None:
    found.frames.append((width, height))
    if len(found.frames) > budget.max_frames:
        raise OverBudget("too_many_frames", f"more than {budget.max_frames} frames")
    if width * height > budget.max_pixels:
        raise OverBudget("too_many_pixels", f"{what} is {width}x{height}, over {budget.max_pixels} pixels")


# --- JPEG: count scans (SOS) and read every SOF, up to the first EOI -------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field
# The end of entropy-coded data: 0xFF (fill bytes allowed) then anything but a stuffed zero or RSTn.
# Written to start with a plain 0xFF, which the regex engine finds by a fast scan; as `\xff+` it
# tried a match at every byte of the scan, a twentieth of the decode's CPU.
_NEXT_MARKER = re.compile(rb"\xff[\xff]*[^\x00\xd0-\xd7\xff]")


def _walk_jpeg(data: bytes, found: Structure, budget: DecodeBudget) -> None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        while data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        marker = data[pos + 1]
        pos += 2
        if marker == 0xD9:  # EOI: libjpeg stops here (an MPO's later pictures are not decoded)
            return
        if marker in _STANDALONE:
            continue
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2:
            return
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            if height == 0 or width == 0:
                # Height 0 means "given later in a DNL marker": the size is unknown until the
                # whole image is decoded, so no budget can be checked first.
                raise OverBudget("unknown_size", f"JPEG frame declares {width}x{height}")
            _frame(found, budget, width, height, "JPEG frame")
        pos += length
        if marker == 0xDA:  # SOS: a scan header, then entropy-coded data up to the next marker
            found.scans += 1
            width, height = found.frames[-1] if found.frames else (0, 0)
            if found.scans * width * height > budget.max_scan_pixels:
                total = found.scans + _count_more_scans(data, pos)
                raise OverBudget("too_many_scans", f"too many scans: {total} over {width}x{height} pixels")
            if found.scans > budget.max_scans:
                total = found.scans + _count_more_scans(data, pos)
                raise OverBudget("too_many_scans", f"too many scans: {total} (limit {budget.max_scans})")
            match = _NEXT_MARKER.search(data, pos)
            if match is None:
                return
            pos = match.end() - 2


def _count_more_scans(data: bytes, pos: int) -> int:
    """Scans after `pos`, roughly (SOS markers up to EOI), so the refusal names the real count."""
    end = data.find(b"\xff\xd9", pos)
    return data.count(b"\xff\xda", pos, end if end >= 0 else len(data))


# --- PNG and APNG: the canvas and every frame control chunk ------------------------------------


def _walk_png(data: bytes, found: Structure, budget: DecodeBudget) -> None:
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + min(length, 26)]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
            _frame(found, budget, width, height, "PNG image")
        elif kind == b"fcTL":  # an APNG frame: its own width and height at offset 4
            width, height = struct.unpack(">II", body[4:12])
            _frame(found, budget, width, height, "APNG frame")
        elif kind == b"IEND":
            return
        pos += 12 + length


# --- ICO and CUR: each directory entry's embedded PNG or BMP, by its own header -----------------


def _walk_ico(data: bytes, found: Structure, budget: DecodeBudget) -> None:
    (count,) = struct.unpack("<H", data[4:6])
    for index in range(count):
        entry = 6 + 16 * index
        listed_w, listed_h = data[entry] or 256, data[entry + 1] or 256
        size, offset = struct.unpack("<II", data[entry + 8 : entry + 16])
        embedded = data[offset : offset + 26]
        if embedded[:8] == b"\x89PNG\r\n\x1a\n":
            width, height = struct.unpack(">II", embedded[16:24])
        elif len(embedded) >= 12:
            # A BMP without its file header; the height counts the colour and the mask rows.
            width, height = struct.unpack("<ii", embedded[4:12])
            width, height = abs(width), abs(height) // 2
        else:
            width, height = listed_w, listed_h
        _frame(found, budget, width, height, f"icon {index} (listed as {listed_w}x{listed_h})")


# --- TIFF and BigTIFF: every IFD's ImageWidth and ImageLength ------------------------------------

_TIFF_VALUE = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # SHORT, LONG, LONG8


def _walk_tiff(data: bytes, found: Structure, budget: DecodeBudget) -> None:
    order = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(order + "H", data[2:4])[0] == 43
    if big:
        (offset,) = struct.unpack(order + "Q", data[8:16])
        count_fmt, entry_size, next_fmt = "Q", 20, "Q"
    else:
        (offset,) = struct.unpack(order + "I", data[4:8])
        count_fmt, entry_size, next_fmt = "H", 12, "I"
    seen = set()
    while offset and offset not in seen:  # a loop of IFDs would otherwise never end
        seen.add(offset)
        count_size = struct.calcsize(count_fmt)
        (entries,) = struct.unpack(order + count_fmt, data[offset : offset + count_size])
        start = offset + count_size
        size = {}
        for index in range(entries):
            entry = data[start + index * entry_size : start + (index + 1) * entry_size]
            tag, kind = struct.unpack(order + "HH", entry[:4])
            if tag in (256, 257) and kind in _TIFF_VALUE:
                fmt, width = _TIFF_VALUE[kind]
                value_at = 12 if big else 8
                (size[tag],) = struct.unpack(order + fmt, entry[value_at : value_at + width])
        if 256 in size and 257 in size:
            _frame(found, budget, size[256], size[257], f"TIFF page {len(seen)}")
        after = start + entries * entry_size
        (offset,) = struct.unpack(order + next_fmt, data[after : after + struct.calcsize(next_fmt)])


# --- WebP: the VP8X canvas, a still picture's own header, every animation frame ----------------


def _u24(raw: bytes) -> int:
    return raw[0] | raw[1] << 8 | raw[2] << 16


def _walk_webp(data: bytes, found: Structure, budget: DecodeBudget) -> None:
    pos = 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + min(length, 32)]
        if kind == b"VP8X":
            _frame(found, budget, _u24(body[4:7]) + 1, _u24(body[7:10]) + 1, "WebP canvas")
        elif kind == b"ANMF":
            _frame(found, budget, _u24(body[6:9]) + 1, _u24(body[9:12]) + 1, "WebP frame")
        elif kind == b"VP8 " and body[3:6] == b"\x9d\x01\x2a":
            width, height = struct.unpack("<HH", body[6:10])
            _frame(found, budget, width & 0x3FFF, height & 0x3FFF, "WebP picture")
        elif kind == b"VP8L" and body[:1] == b"\x2f":
            (bits,) = struct.unpack("<I", body[1:5])
            _frame(found, budget, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, "WebP picture")
        pos += 8 + length + (length & 1)  # chunks are padded to an even size


# --- GIF: the logical screen and every image descriptor ------------------------------------------


def _walk_gif(data: bytes, found: Structure, budget: DecodeBudget) -> None:
    width, height, flags = struct.unpack("<HHB", data[6:11])
    _frame(found, budget, width, height, "GIF screen")
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            return
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor: Pillow grows the canvas to hold a frame past the screen
            left, top, w, h, flags = struct.unpack("<HHHHB", data[pos + 1 : pos + 10])
            _frame(found, budget, max(width, left + w), max(height, top + h), "GIF frame")
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)  # LZW minimum code size, then the data
        else:
            return


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while data[pos]:
        pos += data[pos] + 1
    return pos + 1
