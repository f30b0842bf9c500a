"""Our settings, each read in exactly one place."""

from dataclasses import dataclass

from indexer.decode import DecodeLimits


@dataclass(frozen=True)
class PolicyConfig:
    allow_loopback: bool  # POLICY_ALLOW_LOOPBACK: open 127.0.0.0/8 and ::1 (demo and tests only)

    @classmethod
    def from_settings(cls, settings) -> "PolicyConfig":
        return cls(allow_loopback=settings.getbool("POLICY_ALLOW_LOOPBACK"))


@dataclass(frozen=True)
class IndexerConfig:
    gallery_uri: str  # GALLERY_URI: LanceDB directory or object-store URI
    workers: int  # INDEXER_WORKERS: processes decoding, hashing and detecting faces
    batch_size: int  # INDEXER_BATCH_SIZE: rows buffered before an append
    limits: DecodeLimits  # INDEXER_MAX_IMAGE_BYTES, INDEXER_MAX_PIXELS

    @classmethod
    def from_settings(cls, settings) -> "IndexerConfig":
        return cls(
            gallery_uri=settings.get("GALLERY_URI"),
            workers=max(1, settings.getint("INDEXER_WORKERS")),
            batch_size=max(1, settings.getint("INDEXER_BATCH_SIZE")),
            limits=DecodeLimits(
                max_bytes=settings.getint("INDEXER_MAX_IMAGE_BYTES"),
                max_pixels=settings.getint("INDEXER_MAX_PIXELS"),
            ),
        )
