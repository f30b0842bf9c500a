"""Shard writers: each takes batches of export rows (`write`) and ends a shard (`close`),
img2dataset-style. A shard is hashed as it is written; one that fails is deleted, so only
complete shards ever lie in an export."""

import hashlib
import json
from dataclasses import dataclass
from typing import BinaryIO, Callable

import pyarrow as pa
import pyarrow.compute as pc
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


def json_rows(table: pa.Table) -> list[dict]:
    """Rows as JSON values: timestamps as ISO 8601 text (converted by Arrow, not per row), no bytes."""
    columns = {}
    for column, field in zip(table.columns, table.schema):
        if pa.types.is_timestamp(field.type):
            columns[field.name] = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")
        elif not pa.types.is_binary(field.type):
            columns[field.name] = column
    return pa.table(columns).to_pylist()


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
        lines = [json.dumps(row, ensure_ascii=False) for row in json_rows(table)]
        self.file.write(("\n".join(lines) + "\n").encode())


class WebDatasetShard(ShardWriter):
    """A tar of `{key}.jpg` (the stored thumbnail: faces already pixelated, never the original
    pixels) and `{key}.json` per row, keyed by sighting id.

    The ustar headers are written here rather than by `tarfile`, whose per-member cost (PAX
    header building, copies) made it a hundred times slower than the rest of the export."""

    def _write(self, table: pa.Table) -> None:
        parts = []
        for thumbnail, row in zip(table["thumbnail"].to_pylist(), json_rows(table)):
            key = row["sighting_id"]
            parts.append(tar_member(f"{key}.jpg", thumbnail))
            parts.append(tar_member(f"{key}.json", json.dumps(row, ensure_ascii=False).encode()))
        self.file.write(b"".join(parts))

    def _finish(self) -> None:
        self.file.write(bytes(2 * TAR_BLOCK))  # end of archive


TAR_BLOCK = 512


def tar_member(name: str, data: bytes, *, mtime: int = 0) -> bytes:
    """One regular file in a POSIX ustar archive: header block, data, padding to a block."""
    encoded = name.encode()
    if len(encoded) > 100:
        raise ValueError(f"tar member name longer than 100 bytes: {name!r}")
    header = bytearray(TAR_BLOCK)
    header[0 : len(encoded)] = encoded
    header[100:108] = b"0000644\0"  # mode
    header[108:116] = b"0000000\0"  # uid
    header[116:124] = b"0000000\0"  # gid
    header[124:136] = b"%011o\0" % len(data)
    header[136:148] = b"%011o\0" % mtime
    header[148:156] = b" " * 8  # the checksum is summed with its own field as spaces
    header[156:157] = b"0"  # regular file
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\0 " % sum(header)
    padding = -len(data) % TAR_BLOCK
    return bytes(header) + data + bytes(padding)


SHARD_WRITERS: dict[str, Callable[..., ShardWriter]] = {
    "parquet": ParquetShard,
    "webdataset": WebDatasetShard,
    "jsonl": JsonlShard,
}
