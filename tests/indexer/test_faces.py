import pytest
from PIL import Image

from gallery.demo import make_picture
from indexer.decode import decode_bounded
from indexer.faces import FaceDetector, pixelate_faces
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
