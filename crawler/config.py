"""Our settings, each read in exactly one place."""

from dataclasses import dataclass
from pathlib import Path

from indexer.decode import DecodeLimits
from indexer.store import Gallery
from robots_policy.optout import OptOutList


@dataclass(frozen=True)
class PolicyConfig:
    allow_loopback: bool  # POLICY_ALLOW_LOOPBACK: open 127.0.0.0/8 and ::1 (demo and tests only)
    optout_files: tuple[str, ...]  # POLICY_OPTOUT_FILES: steward opt-out lists, on top of the gallery's own

    @classmethod
    def from_settings(cls, settings) -> "PolicyConfig":
        return cls(
            allow_loopback=settings.getbool("POLICY_ALLOW_LOOPBACK"),
            optout_files=tuple(settings.getlist("POLICY_OPTOUT_FILES")),
        )


def load_optouts(settings) -> OptOutList:
    """The opt-out entries kept in the gallery plus those of every --optout-list file."""
    optouts = OptOutList.parse("\n".join(Gallery(settings.get("GALLERY_URI")).optout_entries()), source="gallery")
    for path in PolicyConfig.from_settings(settings).optout_files:
        optouts.extend(OptOutList.parse(Path(path).read_text(), source=path))
    return optouts


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
