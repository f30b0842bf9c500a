import pytest
from PIL import Image

from gallery.demo import make_picture
from indexer.decode import decode_bounded
from indexer.faces import SCORE_THRESHOLD, VIEWS, FaceBox, FaceDetector, _toview, _unturned, pixelate_faces
from tests.fixture_site import astronaut, grace_hopper, jpeg_bytes


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.mark.parametrize("picture", [astronaut, grace_hopper])
def test_faces_found_then_unfindable_after_pixelation(detector, picture):
    img = decode_bounded(jpeg_bytes(picture())).image
    faces = detector.detect(img)
    assert len(faces) == 1
    box = faces[0]
    assert 0 <= box.x1 < box.x2 <= img.width and 0 <= box.y1 < box.y2 <= img.height
    assert detector.detect(pixelate_faces(img, faces)) == []


def test_no_faces_in_abstract_picture(detector):
    assert detector.detect(make_picture(3)) == []


def test_odd_sizes_are_padded_not_resized(detector):
    # 77 x 45 is no multiple of 32: the detector must pad, and must not crash on tiny input.
    assert detector.detect(Image.new("RGB", (77, 45), "white")) == []


# -- every face masked: turned, small, and through bad input ------------------------------

import io  # noqa: E402

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

from indexer.analyze import analyze_image  # noqa: E402


def _stored_pixels(result) -> Image.Image:
    return decode_bounded(result.thumbnail).image


def _face_grid(side: int = 28, per_row: int = 3, *, gap: int = 12, page_side: int | None = None) -> Image.Image:
    """A page of small grey face crops (scikit-image's LFW sample), as a manual's figure has them."""
    crops = skimage.data.lfw_subset()[:per_row * per_row]
    page_side = page_side or per_row * (side + gap) + gap
    page = Image.new("RGB", (page_side, page_side), "white")
    for index, crop in enumerate(crops):
        face = Image.fromarray((crop * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
        page.paste(face.convert("RGB"), (gap + (index % per_row) * (side + gap), gap + (index // per_row) * (side + gap)))
    return page


def _encoded(img: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "at_least"),
    [
        ("upside-down", lambda: astronaut().transpose(Image.Transpose.ROTATE_180), 1),
        ("on its side", lambda: grace_hopper().transpose(Image.Transpose.ROTATE_90), 1),
        ("on its other side", lambda: astronaut().transpose(Image.Transpose.ROTATE_270), 1),
        ("small faces in a grid", _face_grid, 9),
        ("small faces upside down", lambda: _face_grid().transpose(Image.Transpose.ROTATE_180), 9),
        # Small and tilted, they score faintly: all are found once the first small ones say where to
        # look harder (without that second look, 12 of 16).
        ("small faces tilted", lambda: _face_grid(19, 4).rotate(-20, Image.Resampling.BICUBIC, expand=True, fillcolor="white"), 16),
        # A contact sheet tilted and shrunk to the working size (faces about 19 px): part of it leaves
        # no spot at all, found only because the cells around the small faces found are looked at
        # enlarged too (without that, 43 of 64 on an AVX-512 VNNI CPU).
        ("a page of small faces tilted", lambda: _face_grid(24, 8, gap=6, page_side=512).rotate(-20, Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128)), 58),
        # Tilted faces that score just under the threshold in every view: found by the look turned ±20°.
        ("faces tilted", lambda: _tilted_grid(), 9),
        # One face here leaves a weak spot of 0.186 (int8, AVX-512 VNNI; over 0.2 in float): the turned
        # look starts well under such scores, so a CPU's rounding does not decide (15 of 16 from 0.2).
        ("faces tilted the other way", lambda: _face_grid(64, 4).rotate(20, Image.Resampling.BICUBIC, expand=True, fillcolor="white"), 16),
        # Most of these small faces on their side are found only by enlarged looks in the turned
        # view, which skip spots inside faces found in any view: the upright face must be mapped
        # into the turned view's coordinates first (left where it is, it covers them: 7 of 17).
        ("small faces on their side beside an upright face", lambda: _beside_an_upright_face(), 17),
    ],
)
def test_turned_and_small_faces_are_masked_and_unfindable_after(detector, name, make, at_least):
    data = jpeg_bytes(make())
    result = analyze_image(data, detector=detector)
    assert result.face_count >= at_least, name
    found = detector.detect(_stored_pixels(result))
    masked = detector.scan(decode_bounded(data).image).faces
    # No masked face is found again. A CPU's int8 arithmetic can lift a spot that is no face just
    # over the threshold in the re-encoded thumbnail (with AVX-512 VNNI: the cap insignia in Grace
    # Hopper's portrait, 0.404): allowed only away from every masked face and barely over it.
    assert not any(_overlap(f, m) for f in found for m in masked), name
    assert all(f.score < SCORE_THRESHOLD + 0.05 for f in found), name


def _overlap(a: FaceBox, b: FaceBox) -> bool:
    return a.x1 < b.x2 and b.x1 < a.x2 and a.y1 < b.y2 and b.y1 < a.y2


def _beside_an_upright_face() -> Image.Image:
    page = Image.new("RGB", (512, 512), "white")
    page.paste(astronaut().crop((120, 20, 330, 240)).resize((220, 230)), (0, 0))
    page.paste(_face_grid(20, 4, gap=8).transpose(Image.Transpose.ROTATE_270), (350, 50))
    return page


def _tilted_grid() -> Image.Image:
    return _face_grid(56, 3).rotate(-20, Image.Resampling.BICUBIC, expand=True, fillcolor="white")


def test_weak_tilted_face_is_found_by_the_turned_look(detector):
    data = jpeg_bytes(_tilted_grid())
    assert analyze_image(data, detector=FaceDetector(tilt=False)).face_count == 8
    assert analyze_image(data, detector=detector).face_count == 9


@pytest.mark.parametrize("degrees", [20, -20])
def test_a_box_found_turned_maps_back_onto_the_same_pixels(degrees):
    # A red dot, turned the way the turned look turns a window: the box around where it lands maps
    # back to a box around where it was.
    img = Image.new("RGB", (120, 80), "white")
    img.paste((255, 0, 0), (90, 20, 94, 24))
    turned = img.rotate(degrees, Image.Resampling.BILINEAR, expand=True, fillcolor=(128, 128, 128))
    red = np.argwhere((np.asarray(turned)[..., 0] > 200) & (np.asarray(turned)[..., 1] < 80))
    (y1, x1), (y2, x2) = red.min(axis=0), red.max(axis=0) + 1
    back = _unturned(FaceBox(x1, y1, x2, y2, 1.0), degrees, turned.size, img.size)
    assert back.x1 <= 91 and back.x2 >= 93 and back.y1 <= 21 and back.y2 >= 23
    assert back.x2 - back.x1 < 10 and back.y2 - back.y1 < 10


@pytest.mark.parametrize("view", VIEWS)
def test_a_box_maps_into_a_turned_view_onto_the_same_pixels(view):
    img = Image.new("RGB", (120, 80), "white")
    img.paste((255, 0, 0), (90, 20, 94, 24))
    shown = img.transpose(view) if view is not None else img
    (y1, x1), (y2, x2) = (red := np.argwhere(np.asarray(shown)[..., 1] < 80)).min(axis=0), red.max(axis=0) + 1
    assert _toview(FaceBox(90, 20, 94, 24, 1.0), view, img.size) == FaceBox(x1, y1, x2, y2, 1.0)


def _exif_jpeg(img: Image.Image, orientation) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encoded(img, quality=90, exif=exif.tobytes())


def _animated_gif(first: Image.Image) -> bytes:
    frames = [first.convert("P"), Image.new("P", first.size, 3)]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def _sixteen_bit_png(img: Image.Image) -> bytes:
    grey = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    return _encoded(Image.fromarray(grey), "PNG")


@pytest.mark.parametrize(
    ("name", "data", "note"),
    [
        # A phone's portrait: pixels stored on their side, the tag says turn them upright.
        ("EXIF orientation 6", lambda: _exif_jpeg(astronaut().transpose(Image.Transpose.ROTATE_90), 6), None),
        ("invalid EXIF orientation", lambda: _exif_jpeg(astronaut(), 9), "exif_orientation_invalid"),
        ("huge", lambda: jpeg_bytes(astronaut().resize((6000, 6000))), None),
        ("animated", lambda: _animated_gif(astronaut()), "animated_first_frame"),
        ("CMYK", lambda: _encoded(grace_hopper().convert("CMYK"), quality=90), None),
        ("16-bit grey", lambda: _sixteen_bit_png(grace_hopper()), None),
    ],
)
def test_bad_input_is_still_masked(detector, name, data, note):
    result = analyze_image(data(), detector=detector)
    assert result.face_count >= 1, name
    stored = _stored_pixels(result)
    assert max(stored.size) <= 512
    assert detector.detect(stored) == [], name
    assert result.notes == ((note,) if note else ())


@pytest.mark.parametrize("size", [(1, 4000), (4000, 1), (1, 1)])
def test_one_pixel_strips_are_analysed_without_error(detector, size):
    result = analyze_image(_encoded(Image.new("RGB", size, "grey"), "PNG"), detector=detector)
    assert result.face_count == 0


# -- the int8 model: made once, kept on disk --------------------------------------------------

from indexer import faces as faces_module  # noqa: E402


def test_int8_model_is_made_once_and_read_from_the_cache_after(tmp_path, monkeypatch):
    made = []
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(faces_module, "_quantize", lambda model: made.append(model) or b"int8 of " + model)
    assert faces_module._quantized(b"float") == b"int8 of float"
    assert faces_module._quantized(b"float") == b"int8 of float"
    assert made == [b"float"]
    assert faces_module._quantized(b"other float") == b"int8 of other float"  # a new model, a new entry
    assert len(list((tmp_path / "gallery-crawler").iterdir())) == 2


def test_int8_model_is_still_made_when_the_cache_cannot_be_written(tmp_path, monkeypatch):
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(faces_module, "_quantize", lambda model: b"int8 of " + model)
    assert faces_module._quantized(b"float") == b"int8 of float"
