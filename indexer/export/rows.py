"""What one exported row is: a sighting joined with its image, read from one pinned version of
the gallery, in batches, with the export's filters applied. Every format writes these rows."""

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indexer.store import IMAGES_SCHEMA, SIGHTINGS_SCHEMA, Gallery

# The exported record, defined once: (column, where it comes from). Hashes are written KIND:HEX.
SIGHTING_COLUMNS = [
    "sighting_id",
    "image_id",
    "image_url",
    "page_url",
    "domain",
    "alt_text",
    "license_url",
    "fetched_at",
    "http_status",
    "rendered",
    "policy",
]
IMAGE_COLUMNS = ["width", "height", "format", "bytes", "face_count", "first_seen", "duplicate_of"]
HASH_COLUMNS = ["sha256", "phash", "pdq"]

EXPORT_SCHEMA = pa.schema(
    [SIGHTINGS_SCHEMA.field(c).with_nullable(True) for c in SIGHTING_COLUMNS[:2]]
    + [pa.field(c, pa.string()) for c in HASH_COLUMNS]
    + [IMAGES_SCHEMA.field(c) for c in IMAGE_COLUMNS]
    + [SIGHTINGS_SCHEMA.field(c) for c in SIGHTING_COLUMNS[2:]]
)
THUMBNAIL_FIELD = IMAGES_SCHEMA.field("thumbnail")


def export_schema(*, with_thumbnails: bool) -> pa.Schema:
    return EXPORT_SCHEMA.append(THUMBNAIL_FIELD) if with_thumbnails else EXPORT_SCHEMA


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None  # sightings fetched at or after this moment
    domain: str | None = None  # registrable domain, as the sightings table keeps it
    min_side: int | None = None  # images whose shorter side is at least this many pixels

    def to_json(self) -> dict:
        return {"since": self.since.isoformat() if self.since else None, "domain": self.domain, "min_side": self.min_side}


_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")


def hash_text(kind: str, column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Packed hash bits (fixed-size uint8 lists) as `KIND:HEX` strings, without a Python loop."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    width = column.type.list_size
    n = len(column)
    values = column.values.slice(column.offset * width, n * width)
    flat = pc.fill_null(values, 0).to_numpy(zero_copy_only=False).astype(np.uint8, copy=False)
    hexed = _HEX[flat.reshape(n, width)].view(f"S{2 * width}").ravel() if n else np.array([], dtype="S1")
    text = pa.array(hexed, pa.binary()).cast(pa.string())
    joined = pc.binary_join_element_wise(kind, text, ":")
    return pc.if_else(column.is_null(), pa.scalar(None, pa.string()), joined)


@dataclass
class PinnedGallery:
    """The images and sightings tables at one version each: what an export reads, whatever a
    crawl or a removal commits meanwhile."""

    images: object  # lance.LanceDataset
    sightings: object

    @classmethod
    def of(cls, gallery: Gallery) -> "PinnedGallery":
        gallery.refresh()
        return cls(images=gallery.images.to_lance(), sightings=gallery.sightings.to_lance())

    @property
    def versions(self) -> dict[str, int]:
        return {"images": self.images.version, "sightings": self.sightings.version}


@dataclass
class ExportBatch:
    table: pa.Table  # export rows
    image_positions: pa.ChunkedArray  # each row's image, as a row number of the pinned images table


class ExportRows:
    """Batches of EXPORT_SCHEMA rows (plus `thumbnail` when asked) from a pinned gallery."""

    def __init__(self, pinned: PinnedGallery, *, filters: Filters, with_thumbnails: bool, batch_rows: int = 65_536):
        self.pinned = pinned
        self.filters = filters
        self.with_thumbnails = with_thumbnails
        self.batch_rows = batch_rows
        # Images once, without thumbnails (those are taken per batch by row position).
        images = pinned.images.to_table(columns=["image_id", "phash", "pdq", *IMAGE_COLUMNS])
        self.image_ids = images["image_id"].combine_chunks()
        self.image_side = pa.table(
            {
                "sha256": pc.binary_join_element_wise("sha256", images["image_id"], ":"),
                "phash": hash_text("phash", images["phash"]),
                "pdq": hash_text("pdq", images["pdq"]),
                **{c: images[c] for c in IMAGE_COLUMNS},
            }
        ).combine_chunks()
        self.schema = export_schema(with_thumbnails=with_thumbnails)

    def __iter__(self) -> Iterator[ExportBatch]:
        # Each sighting's image row, looked up once for the whole table (one hash table of image
        # ids, not one per batch); the unfiltered scans below return rows in this same order.
        image_of = self.pinned.sightings.to_table(columns=["image_id"])["image_id"]
        all_positions = pc.index_in(image_of, value_set=self.image_ids)
        start = 0
        for batch in self.pinned.sightings.to_batches(columns=SIGHTING_COLUMNS, batch_size=self.batch_rows):
            positions = all_positions.slice(start, batch.num_rows)
            start += batch.num_rows
            joined = self._join(pa.Table.from_batches([batch]), positions)
            if joined.table.num_rows:
                yield joined

    def _join(self, sightings: pa.Table, positions: pa.ChunkedArray) -> "ExportBatch":
        f = self.filters
        keep = positions.is_valid()
        # A sighting whose image this version lacks (written between the two tables' commits) is left out.
        if f.domain is not None:
            keep = pc.and_(keep, pc.fill_null(pc.equal(sightings["domain"], f.domain), False))
        if f.since is not None:
            since = pa.scalar(f.since, sightings["fetched_at"].type)
            keep = pc.and_(keep, pc.fill_null(pc.greater_equal(sightings["fetched_at"], since), False))
        if f.min_side is not None:
            side = self.image_side.select(["width", "height"]).take(pc.fill_null(positions, 0))
            shorter = pc.min_element_wise(side["width"], side["height"])
            keep = pc.and_(keep, pc.fill_null(pc.greater_equal(shorter, f.min_side), False))
        sightings, positions = sightings.filter(keep), positions.filter(keep)
        image = self.image_side.take(positions)
        columns = {c: sightings[c] for c in SIGHTING_COLUMNS}
        columns.update({c: image[c] for c in HASH_COLUMNS + IMAGE_COLUMNS})
        if self.with_thumbnails:
            columns["thumbnail"] = self._thumbnails(positions)
        table = pa.table({name: columns[name] for name in self.schema.names}, schema=self.schema)
        return ExportBatch(table, positions)

    def _thumbnails(self, positions) -> pa.Array:
        if not len(positions):
            return pa.array([], pa.binary())
        unique = pc.unique(positions)
        order = pc.sort_indices(unique)
        wanted = unique.take(order)
        thumbs = self.pinned.images.take(wanted.to_numpy(zero_copy_only=False).tolist(), columns=["thumbnail"])["thumbnail"]
        return thumbs.take(pc.index_in(positions, value_set=wanted))
