"""Shard writers: each takes batches of export rows (`write`) and ends a shard (`close`),
img2dataset-style. A shard is hashed as it is written; one that fails is deleted, so only
complete shards ever lie in an export."""

import io
import hashlib
import json
import tarfile
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Callable

import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("parquet", "webdataset", "jsonl")
EXTENSIONS = {"parquet": "parquet", "webdataset": "tar", "jsonl": "jsonl"}


@dataclass
class Shard:
    path: str  # relative to the export's root
    rows: int
    bytes: int
    sha256: str

    def to_json(self) -> dict:
        return {"path": self.path, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


class HashingFile:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False
        self.aborted = False

    def write(self, data) -> int:
        view = memoryview(data)
        if self.aborted:
            return view.nbytes  # the shard is being thrown away: a writer's last flush goes nowhere
        self.raw.write(view)  # first: a failed write must not be counted
        self.digest.update(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.raw.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.raw.close()

    def abort(self) -> None:
        self.aborted = True
        try:
            self.close()
        except OSError:
            pass


def json_ready(row: dict) -> dict:
    """A row as JSON values: timestamps as ISO 8601, no bytes."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if not isinstance(v, bytes)}


class ShardWriter:
    """Writes one shard to `open_file(path)`; subclasses say how rows become bytes."""

    def __init__(self, raw: BinaryIO, *, path: str, schema: pa.Schema):
        self.path = path
        self.schema = schema
        self.file = HashingFile(raw)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self._write(table)
        self.rows += table.num_rows

    def close(self) -> Shard:
        self._finish()
        self.file.close()
        return Shard(self.path, self.rows, self.file.size, self.file.digest.hexdigest())

    def abort(self) -> None:
        """Close after a failure, ignoring what else fails; the caller deletes the file."""
        self.file.abort()

    def _write(self, table: pa.Table) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass


class ParquetShard(ShardWriter):
    def __init__(self, raw: BinaryIO, *, path: str, schema: pa.Schema):
        super().__init__(raw, path=path, schema=schema)
        self.writer = pq.ParquetWriter(self.file, schema, compression="snappy")

    def _write(self, table: pa.Table) -> None:
        self.writer.write_table(table)

    def _finish(self) -> None:
        self.writer.close()


class JsonlShard(ShardWriter):
    def _write(self, table: pa.Table) -> None:
        lines = [json.dumps(json_ready(row), ensure_ascii=False) for row in table.to_pylist()]
        self.file.write(("\n".join(lines) + "\n").encode())


class WebDatasetShard(ShardWriter):
    """A tar of `{key}.jpg` (the stored thumbnail: faces already pixelated, never the original
    pixels) and `{key}.json` per row, keyed by sighting id."""

    def __init__(self, raw: BinaryIO, *, path: str, schema: pa.Schema):
        super().__init__(raw, path=path, schema=schema)
        self.tar = tarfile.open(fileobj=self.file, mode="w|", format=tarfile.PAX_FORMAT)

    def _write(self, table: pa.Table) -> None:
        for row in table.to_pylist():
            key = row["sighting_id"]
            self._member(f"{key}.jpg", row["thumbnail"])
            self._member(f"{key}.json", json.dumps(json_ready(row), ensure_ascii=False).encode())

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        self.tar.addfile(info, io.BytesIO(data))

    def _finish(self) -> None:
        self.tar.close()


SHARD_WRITERS: dict[str, Callable[..., ShardWriter]] = {
    "parquet": ParquetShard,
    "webdataset": WebDatasetShard,
    "jsonl": JsonlShard,
}
