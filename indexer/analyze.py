"""From downloaded bytes to everything the gallery stores about an image: one decode, then
hashes, face pixelation and the thumbnail. Runs in worker processes, never on the reactor."""

import io
from dataclasses import dataclass

from indexer.decode import DecodeLimits, ImageRejected, decode_bounded
from indexer.faces import FaceDetector, pixelate_faces
from indexer.hashes import ImageHashes, perceptual_hashes, sha256_hex
from indexer.matcher import QueryPicture, query_picture
from indexer.regions import region_hashes
from robots_policy.xmp import check_xmp

THUMBNAIL_QUALITY = 85


@dataclass(frozen=True)
class AnalyzedImage:
    image_id: str  # sha256 hex of the original bytes
    hashes: ImageHashes
    regions: bytes | None  # hashes of fixed parts of the picture (indexer/regions.py), for crops
    width: int
    height: int
    format: str
    bytes: int
    face_count: int  # boxes masked; nothing else about a face is kept
    thumbnail: bytes  # JPEG, faces pixelated, longest side <= 512
    policy: str  # what the embedded metadata check said, for the sighting's provenance
    face_uncertain: bool = False  # something scored just under the face threshold: for a steward's review
    notes: tuple[str, ...] = ()  # the decode's notes (DecodedImage.notes), counted as indexer/notes/<note>


@dataclass(frozen=True)
class Rejected:
    """A skip as data: it crosses process boundaries and ends up in stats and logs."""

    reason: str
    detail: str
    by_policy: bool = False  # a rights reservation (counted as a policy block), not bad data


class ReservedByMetadata(ImageRejected):
    """The file's own rights metadata (XMP plus:DataMining) reserves it."""


def analyze_image(data: bytes, *, detector: FaceDetector, limits: DecodeLimits = DecodeLimits()) -> AnalyzedImage:
    decoded = decode_bounded(data, limits)
    metadata = check_xmp(decoded.xmp)
    if not metadata.allowed:
        raise ReservedByMetadata(metadata.reason)
    # Hashes describe the picture as published (faces included), so a search with the
    # original finds it; only pixels we store are masked.
    hashes = perceptual_hashes(decoded.image)
    regions = region_hashes(decoded.image)
    scan = detector.scan(decoded.image)
    masked = pixelate_faces(decoded.image, scan.faces) if scan.faces else decoded.image
    buffer = io.BytesIO()
    masked.save(buffer, "JPEG", quality=THUMBNAIL_QUALITY)
    return AnalyzedImage(
        image_id=sha256_hex(data),
        hashes=hashes,
        regions=regions,
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        bytes=len(data),
        face_count=len(scan.faces),
        face_uncertain=scan.uncertain,
        thumbnail=buffer.getvalue(),
        policy=metadata.reason,
        notes=decoded.notes,
    )


def query_hashes(data: bytes, limits: DecodeLimits = DecodeLimits()) -> tuple[str, ImageHashes]:
    """sha256 and perceptual hashes of a query image, through the same decode as indexing."""
    return sha256_hex(data), perceptual_hashes(decode_bounded(data, limits).image)


# Worker-process side: one detector per process, built once by the pool initializer.
_worker_detector: FaceDetector | None = None
_worker_limits = DecodeLimits()


def init_worker(limits: DecodeLimits) -> None:
    global _worker_detector, _worker_limits
    _worker_detector, _worker_limits = FaceDetector(), limits


def analyze_in_worker(data: bytes) -> AnalyzedImage | Rejected:
    assert _worker_detector is not None, "init_worker was not run in this process"
    try:
        return analyze_image(data, detector=_worker_detector, limits=_worker_limits)
    except ImageRejected as exc:
        return Rejected(exc.reason, str(exc), by_policy=isinstance(exc, ReservedByMetadata))
    except MemoryError:
        # The worker's address-space bound (indexer/workers.py) stopped an allocation.
        return Rejected("out_of_memory", "out_of_memory: decoding needed more memory than a worker may use")


def init_query_worker(limits: DecodeLimits) -> None:
    global _worker_limits
    _worker_limits = limits


def query_in_worker(data: bytes) -> QueryPicture | Rejected:
    """`query_picture` in a worker process (the search service's uploads)."""
    try:
        return query_picture(data, _worker_limits)
    except ImageRejected as exc:
        return Rejected(exc.reason, str(exc))
    except MemoryError:
        return Rejected("out_of_memory", "out_of_memory: decoding needed more memory than a worker may use")
