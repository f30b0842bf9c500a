"""Purge and verification: rewrite the data files so deleted rows are gone from disk, drop
every older version, then read every file back to prove nothing removed is left."""

import shutil
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from indexer.commits import compact_files
from indexer.compat import data_file_columns, read_data_file
from indexer.purge_lock import PurgeLock
from indexer.removal.planning import EXCLUSION_URL_COLUMNS, SIGHTING_COLUMNS, url_mask
from indexer.removal.requests import RemovalRequest
from indexer.store import Gallery, default_page_cache, storage_options


def purge(gallery: Gallery, *, lock: PurgeLock) -> None:
    """Rewrite every fragment that has deleted rows, then drop every older version and file.

    `Table.optimize()` is not enough: it leaves fragments with under 10% deleted rows as they
    are, so deleted rows stay in the data files. Call with the lock held exclusively.
    """
    for table in (gallery.images, gallery.sightings, gallery.exclusions):
        table.checkout_latest()
        dataset = table.to_lance()
        compact_files(dataset, every_deleted_row=True)
        _rebuild_stale_indices(dataset)
        # delete_unverified also removes files no manifest references yet; that is only safe
        # while no append can be in flight, i.e. under an enforced lock.
        dataset.cleanup_old_versions(older_than=timedelta(0), delete_unverified=lock.enforced)
        table.checkout_latest()


def clear_page_cache(uri: str) -> None:
    """Delete the pages crawls kept inside a local gallery (crawler/downloadermiddlewares/
    page_cache.py): they may hold what was just removed. Only a cache, so all of it goes; a
    cache kept elsewhere (`--page-cache DIR`) is the operator's to clear."""
    path = default_page_cache(uri)
    if path is None or not path.exists():
        return
    # Renamed first: a crawl writing into the cache meanwhile starts a new one, instead of
    # making the delete fail halfway.
    doomed = path.with_name(f"{path.name}.removed-{uuid.uuid4().hex}")
    path.rename(doomed)
    shutil.rmtree(doomed)


# Scalar index types as describe_indices() names them -> as create_scalar_index() takes them.
_SCALAR_INDEX_TYPES = {
    "BTree": "BTREE",
    "Bitmap": "BITMAP",
    "LabelList": "LABEL_LIST",
    "Inverted": "INVERTED",
    "NGram": "NGRAM",
    "ZoneMap": "ZONEMAP",
    "BloomFilter": "BLOOMFILTER",
}


def _rebuild_stale_indices(dataset) -> None:
    """Rebuild each scalar index that still covers a dropped fragment.

    Compaction remaps an index onto the fragments it rewrites, but a fragment whose rows were
    all deleted is dropped without a rewrite, and the index keeps its values (removed ids) in
    files that cleanup then treats as current. Other index kinds are left to verification.
    """
    live = {fragment.fragment_id for fragment in dataset.get_fragments()}
    for index in dataset.describe_indices():
        index_type = _SCALAR_INDEX_TYPES.get(index.index_type)
        covered = {fragment for segment in index.segments for fragment in segment.fragment_ids}
        if index_type and covered - live and len(index.field_names) == 1:
            dataset.create_scalar_index(index.field_names[0], index_type, name=index.name, replace=True)


@dataclass
class Verification:
    files_scanned: int
    traces: list[str]


def verify_purged(
    gallery: Gallery, request: RemovalRequest, *, image_ids: set[str], sighting_ids: set[str]
) -> Verification:
    """Read every file of the images, sightings and exclusions tables as it lies on disk, deleted rows
    included, and look for what the request removed: its URLs, domains, sighting and image ids.

    Lance files (data, and index pages such as the image_id BTREE) are decoded: Lance
    compresses strings, so a byte search of them finds nothing even before a delete. Every
    other file (manifests, transactions, deletion vectors) is searched byte for byte for the
    selectors' text.
    """
    url_selectors = request.url_selectors
    needles = [s.value.encode() for s in url_selectors]
    traces, scanned = [], 0
    for name, table in (("images", gallery.images), ("sightings", gallery.sightings), ("exclusions", gallery.exclusions)):
        dataset = table.to_lance()
        filesystem, root = pafs.FileSystem.from_uri(dataset.uri)
        for entry in dataset.all_files().read_all().to_pylist():
            path = f"{root}/{entry['path']}"
            scanned += 1
            if entry["path"].startswith("data/") and entry["path"].endswith(".lance"):
                rows = _read_data_file(f"{dataset.uri}/{entry['path']}", name)
                if name == "images":
                    hit = bool(image_ids & set(rows["image_id"].to_pylist()))
                elif name == "exclusions":
                    hit = bool(url_selectors and rows.num_rows and pc.any(url_mask(rows, url_selectors, EXCLUSION_URL_COLUMNS)).as_py())
                else:
                    hit = bool(sighting_ids & set(rows["sighting_id"].to_pylist()))
                    hit = hit or bool(image_ids & set(rows["image_id"].to_pylist()))
                    hit = hit or (url_selectors and rows.num_rows and pc.any(url_mask(rows, url_selectors)).as_py())
                if hit:
                    traces.append(f"{name}/{entry['path']}")
                continue
            if entry["path"].endswith(".lance"):
                if _strings_hit(f"{dataset.uri}/{entry['path']}", ids=image_ids | sighting_ids, needles=needles):
                    traces.append(f"{name}/{entry['path']}")
                continue
            with filesystem.open_input_stream(path) as stream:
                raw = stream.read()
            if any(needle in raw for needle in needles):
                traces.append(f"{name}/{entry['path']}")
    return Verification(scanned, traces)


def _strings_hit(uri: str, *, ids: set[str], needles: list[bytes]) -> bool:
    """Whether any string in a Lance file that is not a data file (an index page) is a removed
    id or contains a selector's text."""
    table = read_data_file(uri, storage_options=storage_options(uri))
    texts = [n.decode() for n in needles]
    for column in table.columns:
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue
        for value in column.to_pylist():
            if value is not None and (value in ids or any(t in value for t in texts)):
                return True
    return False


def _read_data_file(uri: str, table: str) -> pa.Table:
    wanted = {"images": ["image_id"], "exclusions": list(EXCLUSION_URL_COLUMNS)}.get(table, SIGHTING_COLUMNS)
    options = storage_options(uri)
    present = [c for c in wanted if c in data_file_columns(uri, storage_options=options)]
    # A file written before a column was added lacks it; read what it has.
    data = read_data_file(uri, storage_options=options, columns=present) if present else pa.table({})
    for column in wanted:
        if column not in data.column_names:
            data = data.append_column(column, pa.nulls(data.num_rows, pa.string()))
    return data
