"""The gallery's records, each defined once: a dataclass whose fields carry their column types.
The table schema and the row builder are derived from it, and the crawler's item from the
fields marked `crawled`, so a new column is one field here."""

import hashlib
from dataclasses import Field, dataclass, field, fields
from datetime import datetime

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")


def column(arrow_type: pa.DataType, *, crawled: bool = False, nullable: bool = True, **kwargs) -> Field:
    """A dataclass field that is a table column. `crawled`: the crawler supplies it for each
    place an image is found (the spider's item carries it); the rest the indexer fills in."""
    return field(metadata={"arrow": arrow_type, "crawled": crawled, "nullable": nullable}, **kwargs)


def arrow_fields(record: type) -> list[pa.Field]:
    return [pa.field(f.name, f.metadata["arrow"], nullable=f.metadata["nullable"]) for f in fields(record)]


def crawled_fields(record: type) -> list[Field]:
    return [f for f in fields(record) if f.metadata["crawled"]]


@dataclass(frozen=True, kw_only=True)
class Sighting:
    """Where an image was found: a row of `sightings` but for its keys (see `sighting_row`)."""

    image_url: str = column(pa.string(), crawled=True)
    page_url: str = column(pa.string(), crawled=True)
    domain: str = column(pa.string())  # the page's registrable domain
    alt_text: str | None = column(pa.string(), crawled=True, default=None)
    license_url: str | None = column(pa.string(), crawled=True, default=None)  # rel="license" or similar
    fetched_at: datetime = column(TIMESTAMP)
    http_status: int = column(pa.int32(), crawled=True, default=0)  # 0: seen again, not fetched
    rendered: bool = column(pa.bool_(), crawled=True, default=False)
    policy: str = column(pa.string(), crawled=True, default="")  # the checks it passed, for provenance
    # The HTTP validators the image URL last answered with, so a re-crawl can ask "changed since?".
    etag: str | None = column(pa.string(), crawled=True, default=None)
    last_modified: str | None = column(pa.string(), crawled=True, default=None)
    # How the crawler found the image URL: crawler/extract.py's VIA_* names (img, srcset, css, sitemap...).
    found_via: str | None = column(pa.string(), crawled=True, default=None)


SIGHTINGS_SCHEMA = pa.schema(
    [
        # sha256 of (image_id, image_url, page_url): the key that makes re-crawls idempotent.
        pa.field("sighting_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        *arrow_fields(Sighting),
    ]
)


def sighting_row(image_id: str, sighting: Sighting) -> dict:
    key = "\n".join((image_id, sighting.image_url, sighting.page_url)).encode()
    row = {"sighting_id": hashlib.sha256(key).hexdigest(), "image_id": image_id}
    row.update((f.name, getattr(sighting, f.name)) for f in fields(sighting))
    return row
