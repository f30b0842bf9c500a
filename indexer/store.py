"""The gallery: LanceDB tables as DESIGN.md's contract names them, and the reads and writes on them."""

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from indexer.compat import defer_lance_rest_client

defer_lance_rest_client()  # before LanceDB's import: start-up time (benchmarks/startup.py)
import lancedb  # noqa: E402
from lancedb.index import BTree  # noqa: E402

from indexer.commits import compact_table, retry_conflicts
from indexer.hashes import HASH_BITS
from indexer.purge_lock import PurgeLock
from indexer.regions import REGIONS_BYTES
from indexer.store_errors import STORE_ERRORS, StoreError, describe_store_error
from indexer.records import SIGHTINGS_SCHEMA, TIMESTAMP  # noqa: F401 (defined with their records, read from here too)

# pyarrow's default allocator (mimalloc) keeps what it freed for reuse, and every batch a crawl
# reads and writes frees some: the process grew without end (benchmarks/memory.py).
pa.set_memory_pool(pa.system_memory_pool())


def _hash_vector(kind: str) -> pa.DataType:
    # Packed bits as a fixed-size uint8 vector: LanceDB searches these by Hamming distance.
    return pa.list_(pa.uint8(), HASH_BITS[kind] // 8)


IMAGES_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("phash", _hash_vector("phash")),
        pa.field("pdq", _hash_vector("pdq")),
        pa.field("regions", pa.list_(pa.uint8(), REGIONS_BYTES)),  # indexer/regions.py; null: not computed
        pa.field("words", pa.binary()),  # indexer/keypoints.py; null: not computed (stored before words were kept)
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("format", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("face_count", pa.int32()),
        pa.field("face_uncertain", pa.bool_()),  # a score just under the threshold: listed for review (gallery stats --uncertain-faces)
        pa.field("thumbnail", pa.binary()),
        pa.field("first_seen", TIMESTAMP),
        pa.field("last_seen", TIMESTAMP),
        pa.field("duplicate_of", pa.string()),
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

# Not part of the reader contract: what a crawl was not allowed to take, and why, for stewards.
EXCLUSIONS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("page_url", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("at", TIMESTAMP),
    ]
)

# Steward opt-out entries kept with the gallery, so every future crawl honours them.
OPTOUTS_SCHEMA = pa.schema(
    [
        pa.field("entry", pa.string(), nullable=False),  # as written in an opt-out list
        pa.field("added_at", TIMESTAMP),
    ]
)

# What must never come back (DESIGN.md contract: kind, value, request_id, created_at).
TOMBSTONES_SCHEMA = pa.schema(
    [
        # sha256 of (kind, value, request_id): the key that makes a rerun write nothing twice.
        pa.field("tombstone_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # url, url_prefix, domain, sha256, phash, pdq
        pa.field("value", pa.string(), nullable=False),  # URL, prefix, domain, or lowercase hex
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("created_at", TIMESTAMP),
        # pdq and phash rows sharing a match_group must both match (an --image request), else null.
        pa.field("match_group", pa.string()),
        # Carried so an interrupted request can be listed and resumed with its deadline intact.
        pa.field("basis", pa.string()),
        pa.field("received_at", TIMESTAMP),
    ]
)

# Append-only audit, one row per completed removal request (DESIGN.md contract columns first).
REMOVAL_LOG_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("received_at", TIMESTAMP),
        pa.field("requester", pa.string()),
        pa.field("basis", pa.string()),
        pa.field("selectors", pa.string()),  # JSON list of {"kind", "value"}
        pa.field("rows_removed", pa.int64()),
        pa.field("purged_at", TIMESTAMP),
        pa.field("reference", pa.string()),
        pa.field("notice_json", pa.string()),  # DMCA notice fields, for copyright requests
        pa.field("deadline", TIMESTAMP),  # GDPR Art. 12(3) response deadline, for erasure requests
        pa.field("images_removed", pa.int64()),
        pa.field("sightings_removed", pa.int64()),
        pa.field("near_matches_found", pa.int64()),
        pa.field("near_matches_removed", pa.int64()),
    ]
)

TABLES = {
    "images": IMAGES_SCHEMA,
    "sightings": SIGHTINGS_SCHEMA,
    "crawl_runs": CRAWL_RUNS_SCHEMA,
    "exclusions": EXCLUSIONS_SCHEMA,
    "optouts": OPTOUTS_SCHEMA,
    "tombstones": TOMBSTONES_SCHEMA,
    "removal_log": REMOVAL_LOG_SCHEMA,
}


@dataclass(frozen=True)
class Match:
    image: dict
    distance: int


@dataclass(frozen=True)
class KnownImage:
    """What an image URL answered when last fetched: the image, and the validators to ask with."""

    image_id: str
    etag: str | None
    last_modified: str | None


PAGE_CACHE_DIR = "page-cache"


def default_page_cache(uri: str) -> Path | None:
    """Where crawls keep the pages they fetched unless told otherwise: inside a local gallery
    directory (LanceDB only reads its `*.lance` table directories); none for an object store."""
    return None if "://" in uri else Path(uri).resolve() / PAGE_CACHE_DIR


def storage_options(uri: str, env: dict[str, str] | None = None) -> dict[str, str] | None:
    """Object-store settings from the usual AWS variables, for an s3:// gallery. Credentials
    are read from the environment by LanceDB itself; what it does not pick up is passed here:
    an endpoint (an S3-compatible server), its region, and plain HTTP for a local endpoint."""
    if not uri.startswith(("s3://", "s3a://")):
        return None
    env = os.environ if env is None else env
    options = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint"] = endpoint
        if endpoint.startswith("http://"):
            options["allow_http"] = "true"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return options or None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Lance caches the metadata of every table version it opens (1 GiB per connection by default): a crawl
# commits a version per batch, so that grew with the square of the batches. One bounded session per process.
METADATA_CACHE_BYTES = 32 * 1024**2
_session: "lancedb.Session | None" = None


def _lance_session() -> "lancedb.Session":
    global _session
    if _session is None:
        _session = lancedb.Session(metadata_cache_size_bytes=METADATA_CACHE_BYTES)
    return _session


class Gallery:
    """A LanceDB database directory or object-store URI holding the gallery's tables."""

    def __init__(self, uri: str, *, create: bool = True, fresh_reads: bool = False):
        """`fresh_reads`: every read checks for a newer table version (a long-running reader,
        like the search service, then sees new crawls and removals without a restart)."""
        if "://" not in uri and (Path(uri) / "__init__.py").exists():
            raise ValueError(f"{uri} is a Python package, not a gallery: pass --gallery with another path")
        self.uri = uri
        if not create and "://" not in uri and not Path(uri).is_dir():
            # Before connecting: LanceDB creates the directory, and a mistyped path would stay behind.
            raise FileNotFoundError(f"no gallery at {uri} (run a crawl first)")
        try:
            consistency = timedelta(0) if fresh_reads else None
            self.db = lancedb.connect(uri, read_consistency_interval=consistency, storage_options=storage_options(uri), session=_lance_session())
            existing = set(self.db.list_tables().tables)
        except (*STORE_ERRORS, ValueError) as exc:  # a missing bucket is a ValueError here
            raise StoreError(f"cannot open the gallery at {uri}: {describe_store_error(exc)}") from exc
        if not create and "images" not in existing:
            raise FileNotFoundError(f"no gallery at {uri} (run a crawl first)")
        try:
            for name, schema in TABLES.items():
                if name not in existing:
                    self.db.create_table(name, schema=schema, exist_ok=True)
            self.images = self.db.open_table("images")
            self.sightings = self.db.open_table("sightings")
            self.crawl_runs = self.db.open_table("crawl_runs")
            self.exclusions = self.db.open_table("exclusions")
            self.optouts = self.db.open_table("optouts")
            self.tombstones = self.db.open_table("tombstones")
            self.removal_log = self.db.open_table("removal_log")
            for name, schema in TABLES.items():
                _add_missing_columns(getattr(self, name), schema)  # a gallery made by an older version
        except STORE_ERRORS as exc:
            raise StoreError(f"cannot open the gallery at {uri}: {describe_store_error(exc)}") from exc

    # -- writes ---------------------------------------------------------------------

    def add_images(self, rows: list[dict]) -> None:
        if rows:
            table = pa.Table.from_pylist(rows, schema=IMAGES_SCHEMA)
            retry_conflicts(self.images, lambda: self.images.merge_insert("image_id").when_not_matched_insert_all().execute(table))

    def add_sightings(self, rows: list[dict]) -> None:
        """Insert new sightings; one seen again replaces its row (fetched_at, validators...)."""
        if rows:
            # One row per key, the last: merge_insert would insert a key twice if the batch had it
            # twice (a sighting recorded again after a crash), and refuses two rows for one stored.
            latest = {row["sighting_id"]: row for row in rows}
            table = pa.Table.from_pylist(list(latest.values()), schema=SIGHTINGS_SCHEMA)
            retry_conflicts(
                self.sightings,
                lambda: self.sightings.merge_insert("sighting_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute(table),
            )

    def touch_images(self, image_ids: list[str], seen_at: datetime) -> None:
        if image_ids:
            where = _in_list("image_id", image_ids)
            retry_conflicts(self.images, lambda: self.images.update(where=where, values={"last_seen": seen_at}))

    def record_crawl(self, run_id: str, stats: dict) -> None:
        row = {"run_id": run_id, "finished_at": utcnow(), "stats_json": json.dumps(stats, default=str)}
        self.crawl_runs.add(pa.Table.from_pylist([row], schema=CRAWL_RUNS_SCHEMA))

    def compact(self) -> None:
        """Merge the small data files of images and sightings (each append commits one; every
        read and merge walks them all) and drop old versions. Call under the purge lock, shared."""
        for table in (self.images, self.sightings):
            compact_table(table)

    def index_lookup_columns(self) -> None:
        """Build (or bring up to date) the scalar indexes behind lookups by image_id, which
        every search result and removal does; without them each lookup scans the table."""
        with PurgeLock(self.uri).shared():  # a purge must not delete the files this writes
            for table in (self.images, self.sightings):
                retry_conflicts(table, lambda: self._index_image_id(table))

    @staticmethod
    def _index_image_id(table) -> None:
        if any(index.columns == ["image_id"] for index in table.list_indices()):
            # Not Table.optimize(): it compacts towards million-row files, so every crawl's end
            # would rewrite the whole table, thumbnails and all (10 s and +660 MB RSS for 98k rows
            # of 20 kB here). Our compaction, then the rows appended since folded into the index.
            compact_table(table)
            dataset = table.to_lance()
            dataset.optimize.optimize_indices()
            table.checkout_latest()
        else:
            table.create_index("image_id", config=BTree())

    def add_exclusions(self, rows: list[dict]) -> None:
        if rows:
            self.exclusions.add(pa.Table.from_pylist(rows, schema=EXCLUSIONS_SCHEMA))

    def add_optout_entries(self, entries: list[str]) -> list[str]:
        """Add entries not already kept; returns the ones added."""
        new = [e for e in dict.fromkeys(entries) if e not in set(self.optout_entries())]
        if new:
            rows = [{"entry": e, "added_at": utcnow()} for e in new]
            self.optouts.add(pa.Table.from_pylist(rows, schema=OPTOUTS_SCHEMA))
        return new

    def remove_optout_entries(self, entries: list[str]) -> int:
        present = [e for e in entries if e in set(self.optout_entries())]
        if present:
            self.optouts.delete(_in_list("entry", present))
        return len(present)

    def optout_entries(self) -> list[str]:
        return self.optouts.to_arrow()["entry"].to_pylist()

    def add_tombstones(self, rows: list[dict]) -> None:
        if rows:
            table = pa.Table.from_pylist(rows, schema=TOMBSTONES_SCHEMA)
            self.tombstones.merge_insert("tombstone_id").when_not_matched_insert_all().execute(table)

    # Deletes name internal ids only: Lance keeps a delete's predicate text until cleanup.
    def delete_images(self, image_ids: list[str]) -> None:
        if image_ids:
            self.images.delete(_in_list("image_id", image_ids))

    def delete_sightings(self, sighting_ids: list[str]) -> None:
        if sighting_ids:
            self.sightings.delete(_in_list("sighting_id", sighting_ids))

    def clear_duplicate_of(self, image_ids: list[str]) -> None:
        """Images pointing at a removed cluster head become heads themselves."""
        if image_ids:
            self.images.update(where=_in_list("duplicate_of", image_ids), values={"duplicate_of": None})

    def set_duplicate_of(self, image_ids: list[str], head: str, *, also_pointing_at: bool = False) -> None:
        """Point `image_ids` at the cluster head `head`; with `also_pointing_at`, the images that
        pointed at them too (they were heads themselves)."""
        if image_ids:
            where = _in_list("image_id", image_ids)
            if also_pointing_at:
                where = f"{where} OR {_in_list('duplicate_of', image_ids)}"
            retry_conflicts(self.images, lambda: self.images.update(where=where, values={"duplicate_of": head}))

    def add_removal_log(self, row: dict) -> None:
        self.removal_log.add(pa.Table.from_pylist([row], schema=REMOVAL_LOG_SCHEMA))

    def refresh(self) -> None:
        """See what other processes committed (a purge, a removal) since these handles opened."""
        for table in (self.images, self.sightings, self.tombstones, self.removal_log):
            table.checkout_latest()

    # -- reads ----------------------------------------------------------------------

    def tombstone_rows(self) -> list[dict]:
        return self.tombstones.to_arrow().to_pylist()

    def removal_log_rows(self) -> list[dict]:
        return self.removal_log.to_arrow().to_pylist()

    def image_ids(self) -> set[str]:
        return set(self.images.to_lance().to_table(columns=["image_id"])["image_id"].to_pylist())

    def image_ids_for_urls(self, image_urls: list[str]) -> dict[str, str]:
        """image URL -> image_id, for URLs some sighting already names."""
        found: dict[str, str] = {}
        for start in range(0, len(image_urls), 500):  # keep each IN list a reasonable size
            chunk = image_urls[start : start + 500]
            rows = self.sightings.search().where(_in_list("image_url", chunk)).select(["image_url", "image_id"])
            found.update({r["image_url"]: r["image_id"] for r in rows.limit(None).to_list()})
        return found

    def known_images(self, domains: list[str] | None = None) -> dict[str, KnownImage]:
        """Image URL -> what it answered when last fetched, for URLs that answered with an ETag
        or Last-Modified; only those seen on pages of `domains` (registrable) when given.

        Reads four columns of the matching sightings, not the whole table."""
        where = "(etag IS NOT NULL OR last_modified IS NOT NULL)"
        if domains:
            where += " AND " + _in_list("domain", domains)
        columns = ["image_url", "image_id", "etag", "last_modified"]
        rows = self.sightings.to_lance().to_table(columns=columns + ["fetched_at"], filter=where).sort_by("fetched_at")
        # Sorted oldest first, so the latest fetch of a URL is the one kept.
        return {
            url: KnownImage(image_id, etag, last_modified)
            for url, image_id, etag, last_modified in zip(*(rows[c].to_pylist() for c in columns))
        }

    def stored_pdq(self, image_id: str) -> bytes | None:
        rows = self.images.search().where(_in_list("image_id", [image_id])).select(["pdq"]).limit(1).to_list()
        return bytes(rows[0]["pdq"]) if rows else None

    def counts(self) -> dict[str, int]:
        return {
            "images": self.images.count_rows(),
            "sightings": self.sightings.count_rows(),
            "tombstones": self.tombstones.count_rows(),
        }

    def face_counts(self) -> dict[str, int]:
        """Images stored with faces masked, the faces masked, and images flagged for review;
        reads two small columns (a gallery from before `face_uncertain` counts none flagged)."""
        table = self.images.to_lance().to_table(columns=["face_count", "face_uncertain"])
        faces = pc.fill_null(table["face_count"], 0)
        return {
            "images_with_faces_masked": pc.sum(pc.greater(faces, 0)).as_py() or 0,
            "faces_masked": pc.sum(faces).as_py() or 0,
            "images_face_uncertain": pc.sum(pc.fill_null(table["face_uncertain"], False)).as_py() or 0,
        }

    def face_uncertain_images(self) -> list[dict]:
        """Images whose detection scored something just under the threshold, for a steward to review."""
        columns = ["image_id", "face_count", "width", "height", "first_seen"]
        return self.images.to_lance().to_table(columns=columns, filter="face_uncertain = true").to_pylist()

    def exclusions_of(self, run_id: str) -> list[dict]:
        return self.exclusions.search().where(f"run_id = '{run_id}'").limit(None).to_list()

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

    def thumbnails(self, image_ids: list[str]) -> dict[str, bytes]:
        """Stored thumbnails by image_id, in one read through the image_id index (the matcher's
        verification stage, a few per query)."""
        if not image_ids:
            return {}
        query = self.images.search().where(_in_list("image_id", image_ids)).select(["image_id", "thumbnail"])
        return {row["image_id"]: row["thumbnail"] for row in query.limit(len(image_ids)).to_list() if row["thumbnail"]}

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


def _add_missing_columns(table, schema: pa.Schema) -> None:
    """Bring a table made by an older version up to the schema: new columns are added all null
    (Lance records them in the manifest; no data file is rewritten)."""
    missing = [f for f in schema if f.name not in table.schema.names]
    if not missing:
        return
    try:
        retry_conflicts(table, lambda: table.add_columns(missing))
    except ValueError:  # another process added them first
        table.checkout_latest()
        if any(f.name not in table.schema.names for f in missing):
            raise


def _in_list(column: str, values: list[str]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"
