"""The gallery: LanceDB tables as DESIGN.md's contract names them, and the reads and writes on them."""

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import lancedb
import pyarrow as pa

from indexer.hashes import HASH_BITS

TIMESTAMP = pa.timestamp("us", tz="UTC")


def _hash_vector(kind: str) -> pa.DataType:
    # Packed bits as a fixed-size uint8 vector: LanceDB searches these by Hamming distance.
    return pa.list_(pa.uint8(), HASH_BITS[kind] // 8)


IMAGES_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("phash", _hash_vector("phash")),
        pa.field("pdq", _hash_vector("pdq")),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("format", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("face_count", pa.int32()),
        pa.field("thumbnail", pa.binary()),
        pa.field("first_seen", TIMESTAMP),
        pa.field("last_seen", TIMESTAMP),
        pa.field("duplicate_of", pa.string()),
    ]
)

SIGHTINGS_SCHEMA = pa.schema(
    [
        # sha256 of (image_id, image_url, page_url): the key that makes re-crawls idempotent.
        pa.field("sighting_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("image_url", pa.string()),
        pa.field("page_url", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("alt_text", pa.string()),
        pa.field("license_url", pa.string()),
        pa.field("fetched_at", TIMESTAMP),
        pa.field("http_status", pa.int32()),
        pa.field("rendered", pa.bool_()),
        pa.field("policy", pa.string()),
    ]
)

# Not part of the reader contract: one row per finished crawl, for `gallery stats`.
CRAWL_RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("finished_at", TIMESTAMP),
        pa.field("stats_json", pa.string()),
    ]
)

TABLES = {"images": IMAGES_SCHEMA, "sightings": SIGHTINGS_SCHEMA, "crawl_runs": CRAWL_RUNS_SCHEMA}


@dataclass(frozen=True)
class Match:
    image: dict
    distance: int


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Gallery:
    """A LanceDB database directory or object-store URI holding the gallery's tables."""

    def __init__(self, uri: str, *, create: bool = True):
        if "://" not in uri and (Path(uri) / "__init__.py").exists():
            raise ValueError(f"{uri} is a Python package, not a gallery: pass --gallery with another path")
        self.uri = uri
        self.db = lancedb.connect(uri)
        existing = set(self.db.list_tables().tables)
        if not create and "images" not in existing:
            raise FileNotFoundError(f"no gallery at {uri} (run a crawl first)")
        for name, schema in TABLES.items():
            if name not in existing:
                self.db.create_table(name, schema=schema, exist_ok=True)
        self.images = self.db.open_table("images")
        self.sightings = self.db.open_table("sightings")
        self.crawl_runs = self.db.open_table("crawl_runs")

    # -- writes ---------------------------------------------------------------------

    def add_images(self, rows: list[dict]) -> None:
        if rows:
            table = pa.Table.from_pylist(rows, schema=IMAGES_SCHEMA)
            self.images.merge_insert("image_id").when_not_matched_insert_all().execute(table)

    def add_sightings(self, rows: list[dict]) -> None:
        if rows:
            table = pa.Table.from_pylist(rows, schema=SIGHTINGS_SCHEMA)
            self.sightings.merge_insert("sighting_id").when_not_matched_insert_all().execute(table)

    def touch_images(self, image_ids: list[str], seen_at: datetime) -> None:
        if image_ids:
            self.images.update(where=_in_list("image_id", image_ids), values={"last_seen": seen_at})

    def record_crawl(self, run_id: str, stats: dict) -> None:
        row = {"run_id": run_id, "finished_at": utcnow(), "stats_json": json.dumps(stats, default=str)}
        self.crawl_runs.add(pa.Table.from_pylist([row], schema=CRAWL_RUNS_SCHEMA))

    # -- reads ----------------------------------------------------------------------

    def image_ids(self) -> set[str]:
        return set(self.images.to_lance().to_table(columns=["image_id"])["image_id"].to_pylist())

    def counts(self) -> dict[str, int]:
        return {"images": self.images.count_rows(), "sightings": self.sightings.count_rows()}

    def last_crawl(self) -> dict | None:
        runs = self.crawl_runs.to_arrow().to_pylist()
        if not runs:
            return None
        latest = max(runs, key=lambda r: r["finished_at"])
        return {"run_id": latest["run_id"], "finished_at": latest["finished_at"], **json.loads(latest["stats_json"])}

    def get_images(self, image_ids: list[str], *, with_thumbnail: bool = False) -> list[dict]:
        if not image_ids:
            return []
        columns = [f.name for f in IMAGES_SCHEMA if with_thumbnail or f.name != "thumbnail"]
        query = self.images.search().where(_in_list("image_id", image_ids)).select(columns)
        return query.limit(len(image_ids)).to_list()

    def sightings_of(self, image_ids: list[str]) -> list[dict]:
        if not image_ids:
            return []
        return self.sightings.search().where(_in_list("image_id", image_ids)).limit(None).to_list()

    def nearest(self, kind: str, value: bytes, *, max_distance: int, limit: int = 100) -> list[Match]:
        """Images whose `kind` hash is within `max_distance` bits of `value`, nearest first.

        Always an exact scan: an approximate index can miss true matches.
        """
        if kind == "sha256":
            return [Match(row, 0) for row in self.get_images([value.hex()])]
        query = (
            self.images.search(list(value), vector_column_name=kind)
            .distance_type("hamming")
            .bypass_vector_index()
            .select([f.name for f in IMAGES_SCHEMA if f.name != "thumbnail"] + ["_distance"])
            .limit(limit)
        )
        matches = []
        for row in query.to_list():
            distance = int(row.pop("_distance"))
            if distance <= max_distance:
                matches.append(Match(row, distance))
        return matches


def _in_list(column: str, values: list[str]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"
