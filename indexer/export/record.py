"""The gallery's `exports` table: which rows each export handed on, so a removal processed
later can name the exports (by manifest) whose holders should be told."""

import pyarrow as pa
import pyarrow.compute as pc

from indexer.store import TIMESTAMP, Gallery

EXPORTS_TABLE = "exports"
EXPORTS_SCHEMA = pa.schema(
    [
        pa.field("export_id", pa.string(), nullable=False),
        pa.field("created_at", TIMESTAMP),
        pa.field("format", pa.string()),
        pa.field("manifest", pa.string()),  # the manifest's path or URI
        pa.field("complete", pa.bool_()),
        pa.field("rows", pa.int64()),
        # Ids only (sha256 hex): no URL or pixel of a removed row is kept here.
        pa.field("sighting_ids", pa.list_(pa.string())),
        pa.field("image_ids", pa.list_(pa.string())),
    ]
)


def _table(gallery: Gallery, *, create: bool):
    if EXPORTS_TABLE in gallery.db.list_tables().tables:
        return gallery.db.open_table(EXPORTS_TABLE)
    return gallery.db.create_table(EXPORTS_TABLE, schema=EXPORTS_SCHEMA, exist_ok=True) if create else None


def record_export(gallery: Gallery, row: dict, *, sighting_ids: pa.Array, image_ids: pa.Array) -> None:
    """One row per export; the id lists are built from Arrow arrays (a million ids, no Python loop)."""
    columns = {name: [row[name]] for name in EXPORTS_SCHEMA.names if name in row}
    for name, ids in (("sighting_ids", sighting_ids), ("image_ids", image_ids)):
        columns[name] = pa.ListArray.from_arrays(pa.array([0, len(ids)], pa.int32()), ids.cast(pa.string()))
    _table(gallery, create=True).add(pa.table(columns, schema=EXPORTS_SCHEMA))


def exports_containing(gallery: Gallery, *, sighting_ids: list[str], image_ids: list[str]) -> list[dict]:
    """The exports that handed on any of these sightings or images, oldest first:
    [{export_id, created_at, format, manifest, sightings, images}] with how many of each."""
    table = _table(gallery, create=False)
    if table is None or not (sighting_ids or image_ids):
        return []
    exports = table.to_arrow()
    found = []
    hits = {
        column: _hits_per_row(exports[column], ids)
        for column, ids in (("sighting_ids", sighting_ids), ("image_ids", image_ids))
    }
    for index, row in enumerate(exports.select(["export_id", "created_at", "format", "manifest"]).to_pylist()):
        sightings, images = hits["sighting_ids"].get(index, 0), hits["image_ids"].get(index, 0)
        if sightings or images:
            found.append({**row, "sightings": sightings, "images": images})
    return sorted(found, key=lambda r: r["created_at"])


def _hits_per_row(lists: pa.ChunkedArray, ids: list[str]) -> dict[int, int]:
    if not ids or not len(lists):
        return {}
    lists = lists.combine_chunks()
    parents = pc.list_parent_indices(lists)
    matched = pc.is_in(pc.list_flatten(lists), value_set=pa.array(ids, pa.string()))
    counts = pc.value_counts(parents.filter(matched))
    return {item["values"].as_py(): item["counts"].as_py() for item in counts}
