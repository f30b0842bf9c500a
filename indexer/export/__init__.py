"""Export: the gallery handed on as parquet, WebDataset or JSON-lines shards with a manifest.

One pinned gallery version is read (rows.py), written in shards of bounded size (writers.py),
described by `_manifest.json`, and recorded in the gallery's `exports` table (record.py) so a
later removal can name the exports that held what it removed.
"""

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from indexer.export.record import exports_containing, record_export
from indexer.export.rows import ExportBatch, ExportRows, Filters, PinnedGallery
from indexer.export.writers import EXTENSIONS, FORMATS, SHARD_WRITERS, Shard, ShardWriter
from indexer.store import Gallery, utcnow
from indexer.store_errors import describe_store_error

__all__ = ["ExportError", "ExportOptions", "ExportResult", "Filters", "FORMATS", "exports_containing", "run_export"]

MANIFEST = "_manifest.json"


class ExportError(Exception):
    """The export was refused before anything was written; the message is one line."""


@dataclass(frozen=True)
class ExportOptions:
    format: str  # parquet | webdataset | jsonl
    out: str  # a directory or an object-store URI
    filters: Filters = field(default_factory=Filters)
    with_thumbnails: bool = False  # parquet and jsonl; WebDataset always carries the thumbnail
    overwrite: bool = False
    shard_rows: int = 100_000
    shard_bytes: int = 512 * 1024 * 1024


@dataclass
class ExportResult:
    manifest: dict
    manifest_path: str

    @property
    def complete(self) -> bool:
        return self.manifest["complete"]


def run_export(
    gallery: Gallery, options: ExportOptions, *, open_file: Callable[[str], BinaryIO] | None = None
) -> ExportResult:
    """Write the export. A write that fails (a full disk) deletes the shard it was writing and
    leaves a manifest with `complete: false` listing the shards that are whole.

    `open_file(path)`: how a shard file is opened for writing (tests inject failing files)."""
    if options.format not in FORMATS:
        raise ExportError(f"unknown export format {options.format!r}: expected one of {', '.join(FORMATS)}")
    fs, root = _destination(options.out)
    _prepare(fs, root, out=options.out, overwrite=options.overwrite)
    open_file = open_file or fs.open_output_stream
    pinned = PinnedGallery.of(gallery)
    thumbnails = options.with_thumbnails or options.format == "webdataset"
    rows = ExportRows(pinned, filters=options.filters, with_thumbnails=thumbnails)
    run = _ShardRun(fs, root, options=options, schema=rows.schema, open_file=open_file)
    for batch in rows:
        if options.format == "webdataset":
            batch = run.drop_missing_thumbnails(batch)
        try:
            run.write(batch)
        except OSError as exc:
            run.fail(exc)
            break
    else:
        try:
            run.finish()
        except OSError as exc:
            run.fail(exc)
    export_id = uuid.uuid4().hex
    manifest = {
        "export_id": export_id,
        "format": options.format,
        "created_at": utcnow().isoformat(),
        "gallery": gallery.uri,
        "table_versions": pinned.versions,
        "filters": options.filters.to_json(),
        "with_thumbnails": thumbnails,
        "complete": run.error is None,
        "error": run.error,
        "counts": {
            "rows": sum(s.rows for s in run.shards),
            "images": len(image_ids := run.image_ids(rows.image_ids)),
            "shards": len(run.shards),
            "left_out": run.left_out,
        },
        "columns": rows.schema.names,
        "shards": [s.to_json() for s in run.shards],
    }
    manifest_path = f"{root}/{MANIFEST}"
    with fs.open_output_stream(manifest_path) as stream:
        stream.write((json.dumps(manifest, indent=2) + "\n").encode())
    shown_path = manifest_path if "://" not in options.out else f"{options.out.rstrip('/')}/{MANIFEST}"
    record_export(
        gallery,
        {
            "export_id": export_id,
            "created_at": utcnow(),
            "format": options.format,
            "manifest": shown_path,
            "complete": manifest["complete"],
            "rows": manifest["counts"]["rows"],
        },
        sighting_ids=run.sighting_ids(),
        image_ids=image_ids,
    )
    return ExportResult(manifest, shown_path)


def _destination(out: str) -> tuple[pafs.FileSystem, str]:
    if "://" in out:
        return pafs.FileSystem.from_uri(out)
    return pafs.LocalFileSystem(), str(Path(out).resolve())


def _prepare(fs: pafs.FileSystem, root: str, *, out: str, overwrite: bool) -> None:
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        raise ExportError(f"{out} is a file: give a directory for the export")
    if info.type == pafs.FileType.Directory:
        entries = fs.get_file_info(pafs.FileSelector(root))
        if entries and not overwrite:
            raise ExportError(f"{out} exists: pass --overwrite to replace it")
        if entries and not any(e.base_name == MANIFEST for e in entries):
            # --overwrite replaces an export, never a directory that holds something else.
            raise ExportError(f"{out} is not an export (no {MANIFEST}): not replacing it")
        if entries:
            fs.delete_dir_contents(root)
    fs.create_dir(root)


class _ShardRun:
    """The shards written so far, the one being written, and what went wrong."""

    def __init__(self, fs, root: str, *, options: ExportOptions, schema: pa.Schema, open_file):
        self.fs, self.root, self.options, self.schema, self.open_file = fs, root, options, schema, open_file
        self.shards: list[Shard] = []
        self.current: ShardWriter | None = None
        # (sighting ids, image row numbers) of the rows in complete shards, and in the open one.
        self.ids: list[tuple[pa.ChunkedArray, pa.ChunkedArray]] = []
        self.pending_ids: list[tuple[pa.ChunkedArray, pa.ChunkedArray]] = []
        self.error: str | None = None
        self.left_out: dict[str, int] = {}

    def drop_missing_thumbnails(self, batch: ExportBatch) -> ExportBatch:
        present = pc.fill_null(pc.greater(pc.binary_length(batch.table["thumbnail"]), 0), False)
        missing = len(present) - pc.sum(present).as_py() if len(present) else 0
        if missing:
            self.left_out["no_thumbnail"] = self.left_out.get("no_thumbnail", 0) + missing
        return ExportBatch(batch.table.filter(present), batch.image_positions.filter(present))

    def write(self, batch: ExportBatch) -> None:
        table = batch.table
        start = 0
        while start < table.num_rows:
            if self.current is None:
                self._open()
            take = min(table.num_rows - start, self.options.shard_rows - self.current.rows)
            part = table.slice(start, take)
            self.current.write(part)
            self.pending_ids.append((part["sighting_id"], batch.image_positions.slice(start, take)))
            start += take
            if self.current.rows >= self.options.shard_rows or self.current.file.size >= self.options.shard_bytes:
                self._close()

    def finish(self) -> None:
        if self.current is not None:
            self._close()

    def fail(self, exc: OSError) -> None:
        self.error = f"{self.current.path if self.current else 'a shard'}: {describe_store_error(exc)}"
        if self.current is not None:
            self.current.abort()
            try:
                self.fs.delete_file(f"{self.root}/{self.current.path}")
            except OSError:
                pass  # never created, or the store refuses even that: the manifest does not list it
            self.current, self.pending_ids = None, []

    def _open(self) -> None:
        path = f"part-{len(self.shards):05d}.{EXTENSIONS[self.options.format]}"
        raw = self.open_file(f"{self.root}/{path}")
        self.current = SHARD_WRITERS[self.options.format](raw, path=path, schema=self.schema)

    def _close(self) -> None:
        self.shards.append(self.current.close())
        self.ids.extend(self.pending_ids)
        self.current, self.pending_ids = None, []

    def sighting_ids(self) -> pa.Array:
        return pa.chunked_array([c for ids, _ in self.ids for c in ids.chunks], pa.string()).combine_chunks()

    def image_ids(self, all_image_ids: pa.Array) -> pa.Array:
        # Distinct row numbers (integers), then their ids: cheaper than distinct id strings.
        positions = pa.chunked_array([c for _, p in self.ids for c in p.chunks], pa.int32())
        return all_image_ids.take(pc.unique(positions)) if len(positions) else pa.array([], pa.string())
