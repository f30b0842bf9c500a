"""Removal and takedown requests: selectors, matching, tombstones, delete, physical purge,
verification and the audit log; plus the tombstone checks the crawler and the indexer run.

Order of work for a request, chosen so a crash at any point leaves something a rerun finishes:
match -> tombstones -> delete images -> delete sightings -> purge -> verify -> log.
"""

import calendar
import csv
import hashlib
import io
import json
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from lance.file import LanceFileReader
from PIL import ImageOps

from indexer.analyze import query_hashes
from indexer.decode import ImageRejected, decode_bounded
from indexer.hashes import ImageHashes, parse_hash, perceptual_hashes
from indexer.purge_lock import PurgeLock
from indexer.export.record import exports_containing
from indexer.search import DEFAULT_MAX_DISTANCE
from indexer.store import STORE_ERRORS, Gallery, StoreError, _in_list, default_page_cache, describe_store_error, storage_options, utcnow
from robots_policy.domains import registrable_domain

BASES = ("copyright", "erasure", "opt-out", "other")
SELECTOR_KINDS = ("url", "url_prefix", "domain", "image", "hash")
# PDQ 31 of 256 is the confident-match threshold of hash-sharing programmes. pHash 8 of 64 is the
# search default: it keeps resizes and recompressions, while unrelated pictures sit near 32.
PDQ_MAX_DISTANCE = DEFAULT_MAX_DISTANCE["pdq"]
PHASH_MAX_DISTANCE = DEFAULT_MAX_DISTANCE["phash"]
DEADLINE_WARNING = timedelta(days=7)
# 17 U.S.C. § 512(c)(3)(A): the elements a takedown notice must contain, under our key names.
DMCA_NOTICE_FIELDS = (
    "signature",
    "copyrighted_work",
    "infringing_material",
    "contact",
    "good_faith_statement",
    "accuracy_statement",
)
# Each delete commits a Lance version whose predicate is parsed in full: bounded lists stay fast.
DELETE_CHUNK = 4096
SAMPLE_SIZE = 5
_HOST_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/@?#]*@)?(?P<host>\[[^\]]*\]|[^:/?#]*)"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RequestError(ValueError):
    """A request that cannot be processed as given; nothing has been written."""


class PurgeFailed(RuntimeError):
    """The purge ran but removed data is still in a file of the gallery."""


# -- URLs and domains: pure, shared by matching, the crawler and the indexer --------------


def normalize_url(url: str, *, prefix: bool = False) -> str:
    """Lowercase scheme and host, drop a default port and the fragment: the forms a URL is
    written in that still fetch the same thing. A prefix keeps an empty path empty."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = parts.path or ("" if prefix else "/")
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def url_host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def host_in_domain(host: str, domain: str) -> bool:
    """`domain` itself, any subdomain of it, or any host whose registrable domain it is."""
    return host == domain or host.endswith("." + domain) or registrable_domain(host) == domain


def url_blocked(url: str, *, urls: frozenset[str], prefixes: tuple[str, ...], domains: frozenset[str]) -> bool:
    """Whether a URL falls under a url, url_prefix or domain tombstone. Pure: the crawler's
    downloader middleware and the indexer both call it."""
    if not (urls or prefixes or domains):
        return False
    normalized = normalize_url(url)
    if normalized in urls or any(normalized.startswith(p) for p in prefixes):
        return True
    host = url_host(url)
    return bool(domains) and any(host_in_domain(host, d) for d in domains)


# -- requests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    kind: str  # one of SELECTOR_KINDS
    value: str  # normalized URL, prefix or domain; KIND:HEX for hash; sha256:HEX of the file for image
    # For image selectors: hashes of the picture as given and of its mirror image, computed when
    # the request is parsed so an undecodable file fails before anything is written.
    variants: tuple[ImageHashes, ...] = ()

    def describe(self) -> dict:
        return {"kind": self.kind, "value": self.value}


@dataclass
class RemovalRequest:
    selectors: list[Selector]
    basis: str = "other"
    requester: str | None = None
    reference: str | None = None  # ticket or notice id
    notice: dict | None = None  # DMCA notice fields (copyright only)
    received_at: datetime | None = None  # None: when first tombstoned, or now
    notes: list[str] = field(default_factory=list)  # warnings for the steward (incomplete notice...)

    @property
    def request_id(self) -> str:
        # Derived from what is asked, so the same request sent twice (or resumed after a
        # crash) is recognised and logged once.
        canonical = {
            "basis": self.basis,
            "requester": self.requester,
            "reference": self.reference,
            "selectors": sorted((s.kind, s.value) for s in self.selectors),
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:32]


def parse_selector(kind: str, value: str) -> Selector:
    """One selector from its option name (url, url-prefix, domain, image, hash) and text."""
    kind = kind.strip().lower().replace("-", "_")
    value = (value or "").strip()
    if kind not in SELECTOR_KINDS:
        raise RequestError(f"unknown selector {kind!r}: expected one of {', '.join(SELECTOR_KINDS)}")
    if not value:
        raise RequestError(f"{kind} selector has no value")
    if kind in ("url", "url_prefix"):
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise RequestError(f"{kind} {value!r} is not an http(s) URL")
        return Selector(kind, normalize_url(value, prefix=kind == "url_prefix"))
    if kind == "domain":
        domain = value.lower().rstrip(".").strip("[]")
        if any(c in domain for c in "/?#@ ") or (":" in domain and "." in domain):
            raise RequestError(f"domain {value!r} is not a host name (use --url-prefix for a URL)")
        if registrable_domain("a.b." + domain) == "b." + domain:
            raise RequestError(f"{domain!r} is a public suffix, not a domain: it would match every site under it")
        return Selector(kind, domain)
    if kind == "hash":
        return Selector(kind, _parse_hash_text(value))
    return _image_selector(Path(value))


def _parse_hash_text(text: str) -> str:
    if ":" not in text and all(c in "0123456789abcdefABCDEF" for c in text):
        raise RequestError(
            "a bare hex string is ambiguous (PDQ and sha256 are both 64 hex digits): write it as "
            "pdq:HEX, phash:HEX or sha256:HEX"
        )
    try:
        kind, raw = parse_hash(text)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    return f"{kind}:{raw.hex()}"


def _image_selector(path: Path) -> Selector:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RequestError(f"cannot read {path}: {exc.strerror}") from None
    try:
        sha256, hashes = query_hashes(data)
        # Perceptual hashes do not survive a flip: hash the mirror image too.
        mirrored = perceptual_hashes(ImageOps.mirror(decode_bounded(data).image))
    except ImageRejected as exc:
        raise RequestError(f"{path} is not a usable image ({exc})") from None
    return Selector("image", f"sha256:{sha256}", variants=(hashes, mirrored))


def load_notice(path: Path) -> tuple[dict, list[str]]:
    """A DMCA notice as a JSON object, and a note per statutory element it lacks."""
    try:
        notice = json.loads(path.read_text())
    except OSError as exc:
        raise RequestError(f"cannot read notice {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"notice {path} is not JSON: {exc}") from None
    if not isinstance(notice, dict):
        raise RequestError(f"notice {path} must be a JSON object of notice fields")
    missing = [name for name in DMCA_NOTICE_FIELDS if not notice.get(name)]
    notes = [f"notice lacks {', '.join(missing)} (17 U.S.C. 512(c)(3)(A))"] if missing else []
    return notice, notes


def parse_received(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RequestError(f"received date {text!r} is not ISO 8601 (YYYY-MM-DD)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def build_request(
    selectors: list[tuple[str, str]],
    *,
    basis: str = "other",
    requester: str | None = None,
    reference: str | None = None,
    notice: Path | dict | None = None,
    received: str | datetime | None = None,
) -> RemovalRequest:
    """Validate everything a request says before anything is written; RequestError if not usable."""
    if not selectors:
        raise RequestError("no selector: give --url, --url-prefix, --domain, --image or --hash")
    basis = (basis or "other").strip().lower()
    if basis not in BASES:
        raise RequestError(f"unknown basis {basis!r}: expected one of {', '.join(BASES)}")
    parsed = list(dict.fromkeys(parse_selector(kind, value) for kind, value in selectors))
    notes = []
    notice_fields = None
    if notice is not None:
        if basis != "copyright":
            raise RequestError("a notice is for copyright requests: pass --basis copyright")
        if isinstance(notice, dict):
            notice_fields = notice
        else:
            notice_fields, notes = load_notice(Path(notice))
    for s in parsed:
        if s.kind == "domain" and registrable_domain(s.value) != s.value:
            notes.append(f"{s.value} is a subdomain of {registrable_domain(s.value)}: only it and its subdomains match")
    received_at = received if isinstance(received, datetime) else parse_received(received)
    return RemovalRequest(
        selectors=parsed,
        basis=basis,
        requester=requester or None,
        reference=reference or None,
        notice=notice_fields,
        received_at=received_at,
        notes=notes,
    )


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


_BATCH_FIELDS = {"basis", "requester", "reference", "received", "notice"}


def parse_requests_file(path: Path) -> tuple[list[RemovalRequest], list[LineError]]:
    """CSV (header naming the selectors url, url_prefix, domain, image, hash and optionally basis,
    requester, reference, received, notice) or JSON lines with the same keys, one request a line.
    Invalid lines come back as errors with their line number; the valid ones still parse."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RequestError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RequestError(f"{path} is not text (CSV or JSON lines)") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    records = _json_lines(text) if first.lstrip().startswith("{") else _csv_rows(text)
    requests, errors = [], []
    for number, record in records:
        if isinstance(record, LineError):
            errors.append(record)
            continue
        try:
            requests.append(_request_from_record(record, base=path.parent))
        except RequestError as exc:
            errors.append(LineError(number, str(exc)))
    if not requests and not errors:
        raise RequestError(f"{path} holds no requests")
    return requests, errors


def _json_lines(text: str):
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, LineError(number, f"not JSON: {exc.msg}")
            continue
        if not isinstance(record, dict):
            yield number, LineError(number, "not a JSON object")
            continue
        yield number, record


def _csv_rows(text: str):
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        # reader.line_num is the physical line the record ended on: the one a person opens.
        if None in record:
            yield reader.line_num, LineError(reader.line_num, "more cells than header columns")
            continue
        yield reader.line_num, {k.strip(): v for k, v in record.items() if k and v not in (None, "")}


def _request_from_record(record: dict, *, base: Path) -> RemovalRequest:
    unknown = set(record) - _BATCH_FIELDS - set(SELECTOR_KINDS) - {"url-prefix"}
    if unknown:
        raise RequestError(f"unknown field {sorted(unknown)[0]!r}: selectors are {', '.join(SELECTOR_KINDS)}")
    selectors = []
    for key in record:
        if key in _BATCH_FIELDS:
            continue
        values = record[key] if isinstance(record[key], list) else [record[key]]
        for value in values:
            if not isinstance(value, str):
                raise RequestError(f"{key} must be a string or a list of strings")
            if key == "image" and not Path(value).is_absolute():
                value = str(base / value)  # relative to the requests file, not to the cwd
            selectors.append((key, value))
    notice = record.get("notice")
    if isinstance(notice, str):
        notice = Path(notice) if Path(notice).is_absolute() else base / notice
    elif notice is not None and not isinstance(notice, dict):
        raise RequestError("notice must be a JSON object or a path to one")
    return build_request(
        selectors,
        basis=record.get("basis", "other"),
        requester=record.get("requester"),
        reference=record.get("reference"),
        notice=notice,
        received=record.get("received"),
    )


def add_one_month(moment: datetime) -> datetime:
    """The same day of the next month, or its last day when that day does not exist (the way
    EU law counts a period in months, Regulation 1182/71 Art. 3(2)(c))."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def erasure_deadline(basis: str, received_at: datetime) -> datetime | None:
    """GDPR Art. 12(3): act on an erasure request within one month of receipt."""
    return add_one_month(received_at) if basis == "erasure" else None


# -- tombstones -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TombstoneIndex:
    """Every tombstone of a gallery, arranged for the checks made per request and per image."""

    urls: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    domains: frozenset[str] = frozenset()
    sha256: frozenset[str] = frozenset()
    # (kind, hash as int) that match on their own (a --hash request).
    single: tuple[tuple[str, int], ...] = ()
    # match_group -> [(kind, hash as int)]: pHash and PDQ of one picture must both match.
    groups: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()

    @classmethod
    def from_rows(cls, rows: list[dict]) -> "TombstoneIndex":
        by = {kind: [r for r in rows if r["kind"] == kind] for kind in ("url", "url_prefix", "domain", "sha256")}
        single, groups = [], {}
        for row in rows:
            if row["kind"] in ("pdq", "phash"):
                entry = (row["kind"], int(row["value"], 16))
                if row.get("match_group"):
                    groups.setdefault(row["match_group"], []).append(entry)
                else:
                    single.append(entry)
        return cls(
            urls=frozenset(r["value"] for r in by["url"]),
            prefixes=tuple(sorted({r["value"] for r in by["url_prefix"]})),
            domains=frozenset(r["value"] for r in by["domain"]),
            sha256=frozenset(r["value"] for r in by["sha256"]),
            single=tuple(single),
            groups=tuple((key, tuple(entries)) for key, entries in sorted(groups.items())),
        )

    def __bool__(self) -> bool:
        return bool(self.urls or self.prefixes or self.domains or self.sha256 or self.single or self.groups)

    def blocks_url(self, url: str) -> bool:
        return url_blocked(url, urls=self.urls, prefixes=self.prefixes, domains=self.domains)

    def blocks_image(self, *, image_id: str, phash: bytes, pdq: bytes) -> str | None:
        """The kind of tombstone the picture falls under, or None."""
        if image_id in self.sha256:
            return "sha256"
        values = {"pdq": int.from_bytes(pdq, "big"), "phash": int.from_bytes(phash, "big")}
        limits = {"pdq": PDQ_MAX_DISTANCE, "phash": PHASH_MAX_DISTANCE}
        for kind, value in self.single:
            if (values[kind] ^ value).bit_count() <= limits[kind]:
                return kind
        for _, entries in self.groups:
            if all((values[kind] ^ value).bit_count() <= limits[kind] for kind, value in entries):
                return "pdq+phash"
        return None


def load_tombstones(gallery: Gallery) -> TombstoneIndex:
    return TombstoneIndex.from_rows(gallery.tombstone_rows())


# -- matching -------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a request removes, decided before anything is written."""

    sighting_ids: list[str]
    image_ids: list[str]  # matched by picture, plus those left with no sighting
    hash_matched: list[str]  # image ids matched by picture (they get sha256 tombstones)
    near_found: int
    near_removed: int
    sample: list[dict]
    total_sightings: int
    total_images: int
    # Rows of the crawls' exclusion log naming a removed URL (Lance row ids: the log has no key).
    exclusion_rowids: list[int] = field(default_factory=list)

    @property
    def matches_everything(self) -> bool:
        all_sightings = self.total_sightings > 0 and len(self.sighting_ids) == self.total_sightings
        all_images = self.total_images > 0 and len(self.image_ids) == self.total_images
        return all_sightings or all_images


_SIGHTING_COLUMNS = ["sighting_id", "image_id", "image_url", "page_url"]
EXCLUSION_URL_COLUMNS = ("url", "page_url")


def _url_mask(table: pa.Table, selectors: list[Selector], columns=("image_url", "page_url")) -> pa.ChunkedArray:
    """Rows whose URL columns (a sighting's image_url and page_url) fall under any url,
    url_prefix or domain selector."""
    mask = pa.array(np.zeros(table.num_rows, dtype=bool))
    for column in columns:
        urls = pc.fill_null(table[column], "")
        hosts = pc.utf8_lower(pc.struct_field(pc.extract_regex(urls, _HOST_PATTERN), [0]))
        hosts = pc.fill_null(hosts, "")
        for selector in selectors:
            if selector.kind == "domain":
                unique = pc.unique(hosts).to_pylist()
                wanted = [h for h in unique if h and host_in_domain(h.strip("[]"), selector.value)]
                mask = pc.or_(mask, pc.is_in(hosts, value_set=pa.array(wanted, pa.string())))
            elif selector.kind in ("url", "url_prefix"):
                # Narrow to the selector's host in bulk, then compare normalized URLs one by one.
                host = urlsplit(selector.value).netloc.rsplit("@", 1)[-1]
                host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
                candidates = pc.equal(hosts, host)
                indices = pc.indices_nonzero(candidates).to_pylist()
                if not indices:
                    continue
                values = pc.take(urls, pa.array(indices)).to_pylist()
                exact = selector.kind == "url"
                hits = [
                    i
                    for i, url in zip(indices, values)
                    if (normalize_url(url) == selector.value if exact else normalize_url(url).startswith(selector.value))
                ]
                if hits:
                    flags = np.zeros(table.num_rows, dtype=bool)
                    flags[hits] = True
                    mask = pc.or_(mask, pa.array(flags))
    return mask


def _within(gallery: Gallery, kind: str, value: bytes, max_distance: int) -> dict[str, int]:
    """Every image within max_distance, by exact scan: Gallery.nearest bypasses any vector
    index (an approximate one can miss true matches). Grows the limit until nothing is cut off."""
    if kind == "sha256":
        return {m.image["image_id"]: 0 for m in gallery.nearest(kind, value, max_distance=0)}
    limit = 1024
    while True:
        matches = gallery.nearest(kind, value, max_distance=max_distance, limit=limit)
        if len(matches) < limit:
            return {m.image["image_id"]: m.distance for m in matches}
        limit *= 8


def _picture_matches(gallery: Gallery, selector: Selector) -> tuple[set[str], set[str], set[str]]:
    """(exact, near found, near removed) image ids for a hash or image selector."""
    if selector.kind == "hash":
        kind, raw = parse_hash(selector.value)
        limit = {"pdq": PDQ_MAX_DISTANCE, "phash": PHASH_MAX_DISTANCE, "sha256": 0}[kind]
        hits = _within(gallery, kind, raw, limit)
        exact = {i for i, d in hits.items() if kind == "sha256" or d == 0}
        near = set(hits) - exact
        return exact, near, near
    exact = set(_within(gallery, "sha256", bytes.fromhex(selector.value.split(":", 1)[1]), 0))
    found, agreed = set(), set()
    for hashes in selector.variants:
        by_pdq = _within(gallery, "pdq", hashes.pdq, PDQ_MAX_DISTANCE)
        by_phash = _within(gallery, "phash", hashes.phash, PHASH_MAX_DISTANCE)
        found |= set(by_pdq) | set(by_phash)
        # A resize or recompression moves both hashes a little; two different pictures rarely
        # land close on both. Deleting needs both to agree.
        agreed |= set(by_pdq) & set(by_phash)
    return exact, found - exact, agreed - exact


def plan_removal(gallery: Gallery, request: RemovalRequest, *, earlier_sha256: set[str] = frozenset()) -> Plan:
    """Which sightings and images the request removes. `earlier_sha256`: images this request
    already tombstoned (a resumed run), so sightings whose image row went first still match."""
    dataset = gallery.sightings.to_lance()
    url_selectors = [s for s in request.selectors if s.kind in ("url", "url_prefix", "domain")]
    exact, near_found, near_removed = set(), set(), set()
    for selector in request.selectors:
        if selector.kind in ("hash", "image"):
            e, f, r = _picture_matches(gallery, selector)
            exact |= e
            near_found |= f
            near_removed |= r
    hash_matched = exact | near_removed | set(earlier_sha256)
    orphans: set[str] = set()
    if url_selectors:
        # URLs are matched after normalization, which a pushed-down filter cannot do: scan.
        sightings = dataset.to_table(columns=_SIGHTING_COLUMNS)
        mask = _url_mask(sightings, url_selectors)
        if hash_matched:
            mask = pc.or_(mask, pc.is_in(sightings["image_id"], value_set=pa.array(sorted(hash_matched))))
        removed = sightings.filter(mask)
        kept_images = set(pc.unique(sightings.filter(pc.invert(mask))["image_id"]).to_pylist())
        orphans = set(removed["image_id"].to_pylist()) - kept_images
    elif hash_matched:
        # A picture's sightings all go with it: read only those.
        removed = dataset.to_table(columns=_SIGHTING_COLUMNS, filter=_in_list("image_id", sorted(hash_matched)))
    else:
        removed = pa.table({c: pa.array([], pa.string()) for c in _SIGHTING_COLUMNS})
    image_ids = sorted(_stored_images(gallery, hash_matched | orphans))
    exclusion_rowids = []
    if url_selectors:
        logged = gallery.exclusions.to_lance().to_table(columns=list(EXCLUSION_URL_COLUMNS), with_row_id=True)
        exclusion_rowids = logged.filter(_url_mask(logged, url_selectors, EXCLUSION_URL_COLUMNS))["_rowid"].to_pylist()
    sample = [{"image_url": r["image_url"], "page_url": r["page_url"]} for r in removed.slice(0, SAMPLE_SIZE).to_pylist()]
    return Plan(
        sighting_ids=sorted(removed["sighting_id"].to_pylist()),
        image_ids=image_ids,
        hash_matched=sorted(exact | near_removed),
        near_found=len(near_found),
        near_removed=len(near_removed),
        sample=sample,
        total_sightings=dataset.count_rows(),
        total_images=gallery.images.count_rows(),
        exclusion_rowids=exclusion_rowids,
    )


def _stored_images(gallery: Gallery, image_ids: set[str]) -> set[str]:
    if not image_ids:
        return set()
    if len(image_ids) > 1000:  # past a few thousand, one column scan beats a long IN list
        return image_ids & gallery.image_ids()
    found = gallery.images.to_lance().to_table(columns=["image_id"], filter=_in_list("image_id", sorted(image_ids)))
    return set(found["image_id"].to_pylist())


# -- processing -----------------------------------------------------------------------------


@dataclass
class RemovalReport:
    request_id: str
    basis: str
    requester: str | None
    reference: str | None
    selectors: list[dict]
    received_at: datetime
    deadline: datetime | None
    dry_run: bool = False
    already_done: bool = False
    refused: str | None = None  # why nothing was done (a request that would match everything)
    sightings_matched: int = 0
    images_matched: int = 0
    sightings_removed: int = 0
    images_removed: int = 0
    near_matches_found: int = 0
    near_matches_removed: int = 0
    tombstones_written: int = 0
    purged: bool = False
    purged_at: datetime | None = None
    files_scanned: int = 0
    # Seconds per stage: match, tombstones, delete, purge, verify (purge is shared by a batch).
    timings: dict[str, float] = field(default_factory=dict)
    sample: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Earlier exports that handed on matched rows (manifest, counts): their holders should be told.
    exports: list[dict] = field(default_factory=list)

    @property
    def rows_removed(self) -> int:
        return self.sightings_removed + self.images_removed

    def to_json(self) -> dict:
        document = asdict(self)
        document["rows_removed"] = self.rows_removed
        return document


@dataclass
class _Pending:
    request: RemovalRequest
    report: RemovalReport
    plan: Plan
    earlier_sha256: set[str]
    logged: bool


def process_requests(
    gallery: Gallery,
    requests: list[RemovalRequest],
    *,
    dry_run: bool = False,
    yes_all: bool = False,
) -> list[RemovalReport]:
    """Match, tombstone and delete each request in turn, then purge once and verify each.

    A request that would remove every row is refused (reported, nothing written) unless
    `yes_all`. Each request is matched after the ones before it, so counts never overlap.
    A store that fails a request stops the run with StoreError; rerunning finishes the work.
    """
    try:
        return _process(gallery, requests, dry_run=dry_run, yes_all=yes_all)
    except PurgeFailed:
        raise
    except STORE_ERRORS as exc:
        raise StoreError(f"the removal stopped (rerun it to finish): {describe_store_error(exc)}") from exc


def _process(gallery: Gallery, requests: list[RemovalRequest], *, dry_run: bool, yes_all: bool) -> list[RemovalReport]:
    gallery.refresh()
    logged = {row["request_id"]: row for row in gallery.removal_log_rows()}
    done: list[_Pending] = []
    reports = []
    for request in requests:
        clock = _Clock()
        item = _prepare(gallery, request, tombstones=gallery.tombstone_rows(), logged=logged)
        report, plan = item.report, item.plan
        report.dry_run = dry_run
        report.timings["match"] = clock.lap()
        reports.append(report)
        if plan.matches_everything and not yes_all:
            report.refused = (
                f"it would remove every row ({len(plan.sighting_ids)} sightings, "
                f"{len(plan.image_ids)} images): pass --yes-all if that is meant"
            )
            continue
        if dry_run or (item.logged and not plan.sighting_ids and not plan.image_ids):
            continue
        report.tombstones_written = _write_tombstones(gallery, item)
        report.timings["tombstones"] = clock.lap()
        _delete_rows(gallery, plan)
        report.sightings_removed, report.images_removed = len(plan.sighting_ids), len(plan.image_ids)
        report.timings["delete"] = clock.lap()
        done.append(item)
    if not done:
        return reports
    versions = (gallery.images.version, gallery.sightings.version)
    lock = PurgeLock(gallery.uri)
    with lock.exclusive():
        clock = _Clock()
        gallery.refresh()
        if (gallery.images.version, gallery.sightings.version) != versions:
            # An append that began before the tombstones were written landed after the delete.
            # No append can run now, and every later one rereads the tombstones: catch up once.
            for item in done:
                _catch_up(gallery, item)
        purge(gallery, lock=lock)
        clear_page_cache(gallery.uri)
        purged_at, purge_seconds = utcnow(), clock.lap()
        for item in done:
            result = verify_purged(
                gallery,
                item.request,
                image_ids=set(item.plan.image_ids) | item.earlier_sha256,
                sighting_ids=set(item.plan.sighting_ids),
            )
            if result.traces:
                raise PurgeFailed(
                    f"request {item.report.request_id}: removed data still on disk in {'; '.join(result.traces[:3])}"
                )
            item.report.purged, item.report.purged_at, item.report.files_scanned = True, purged_at, result.files_scanned
            item.report.timings.update(purge=purge_seconds, verify=clock.lap())
    for item in done:
        if not item.logged:
            gallery.add_removal_log(_log_row(item.report, item.request))
    return reports


def _catch_up(gallery: Gallery, item: _Pending) -> None:
    item.earlier_sha256 |= set(item.plan.hash_matched)
    late = plan_removal(gallery, item.request, earlier_sha256=item.earlier_sha256)
    _delete_rows(gallery, late)
    item.plan.sighting_ids += late.sighting_ids
    item.plan.image_ids += late.image_ids
    item.report.sightings_removed += len(late.sighting_ids)
    item.report.images_removed += len(late.image_ids)


class _Clock:
    def __init__(self):
        self._last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        return round(elapsed, 4)


def _prepare(gallery: Gallery, request: RemovalRequest, *, tombstones: list[dict], logged: dict) -> _Pending:
    request_id = request.request_id
    mine = [t for t in tombstones if t["request_id"] == request_id]
    earlier_sha256 = {t["value"] for t in mine if t["kind"] == "sha256"}
    previous = logged.get(request_id)
    received_at = request.received_at or (
        previous["received_at"] if previous else min((t["received_at"] for t in mine if t["received_at"]), default=None)
    ) or utcnow()
    plan = plan_removal(gallery, request, earlier_sha256=earlier_sha256)
    report = RemovalReport(
        request_id=request_id,
        basis=request.basis,
        requester=request.requester,
        reference=request.reference,
        selectors=[s.describe() for s in request.selectors],
        received_at=received_at,
        deadline=erasure_deadline(request.basis, received_at),
        sample=plan.sample,
        sightings_matched=len(plan.sighting_ids),
        images_matched=len(plan.image_ids),
        near_matches_found=plan.near_found,
        near_matches_removed=plan.near_removed,
        notes=list(request.notes),
        exports=exports_containing(gallery, sighting_ids=plan.sighting_ids, image_ids=plan.image_ids),
    )
    if previous:
        report.already_done = not plan.sighting_ids and not plan.image_ids
        report.purged, report.purged_at = previous["purged_at"] is not None, previous["purged_at"]
    return _Pending(request, report, plan, earlier_sha256, logged=previous is not None)


def _tombstone_rows(item: _Pending) -> list[dict]:
    report = item.report
    entries: list[tuple[str, str, str | None]] = []
    for selector in item.request.selectors:
        if selector.kind in ("url", "url_prefix", "domain"):
            entries.append((selector.kind, selector.value, None))
        elif selector.kind == "hash":
            kind, hexed = selector.value.split(":", 1)
            entries.append((kind, hexed, None))
        else:
            entries.append(("sha256", selector.value.split(":", 1)[1], None))
            for index, hashes in enumerate(selector.variants):
                group = f"{report.request_id}:{selector.value}:{index}"
                entries += [("pdq", hashes.pdq.hex(), group), ("phash", hashes.phash.hex(), group)]
    # The exact bytes of every picture matched, so a copy at another URL is refused outright.
    entries += [("sha256", image_id, None) for image_id in item.plan.hash_matched]
    created = utcnow()
    rows = []
    for kind, value, group in dict.fromkeys(entries):
        key = "\n".join((kind, value, report.request_id, group or "")).encode()
        rows.append(
            {
                "tombstone_id": hashlib.sha256(key).hexdigest(),
                "kind": kind,
                "value": value,
                "request_id": report.request_id,
                "created_at": created,
                "match_group": group,
                "basis": report.basis,
                "received_at": report.received_at,
            }
        )
    return rows


def _write_tombstones(gallery: Gallery, item: _Pending) -> int:
    rows = _tombstone_rows(item)
    gallery.add_tombstones(rows)
    return len(rows)


def _delete_rows(gallery: Gallery, plan: Plan) -> None:
    # Images before sightings: a crash in between leaves sightings the rerun matches again (by
    # URL, or by the sha256 tombstones), so their images are found; the other order would strand
    # image rows no selector reaches any more. Predicates name internal ids only: a predicate's
    # text is kept in Lance's transaction files until cleanup, and must not spell out a URL.
    for chunk in _chunks(plan.image_ids):
        gallery.delete_images(chunk)
    for chunk in _chunks(plan.sighting_ids):
        gallery.delete_sightings(chunk)
    for chunk in _chunks(plan.image_ids):
        gallery.clear_duplicate_of(chunk)
    for chunk in _chunks(plan.exclusion_rowids):
        gallery.exclusions.delete(f"_rowid IN ({', '.join(map(str, chunk))})")


def _chunks(values: list[str]):
    for start in range(0, len(values), DELETE_CHUNK):
        yield values[start : start + DELETE_CHUNK]


def purge(gallery: Gallery, *, lock: PurgeLock) -> None:
    """Rewrite every fragment that has deleted rows, then drop every older version and file.

    `Table.optimize()` is not enough: it leaves fragments with under 10% deleted rows as they
    are, so deleted rows stay in the data files. Call with the lock held exclusively.
    """
    for table in (gallery.images, gallery.sightings, gallery.exclusions):
        table.checkout_latest()
        dataset = table.to_lance()
        dataset.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)
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
    url_selectors = [s for s in request.selectors if s.kind in ("url", "url_prefix", "domain")]
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
                    hit = bool(url_selectors and rows.num_rows and pc.any(_url_mask(rows, url_selectors, EXCLUSION_URL_COLUMNS)).as_py())
                else:
                    hit = bool(sighting_ids & set(rows["sighting_id"].to_pylist()))
                    hit = hit or bool(image_ids & set(rows["image_id"].to_pylist()))
                    hit = hit or (url_selectors and rows.num_rows and pc.any(_url_mask(rows, url_selectors)).as_py())
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
    table = LanceFileReader(uri, storage_options=storage_options(uri)).read_all().to_table()
    texts = [n.decode() for n in needles]
    for column in table.columns:
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue
        for value in column.to_pylist():
            if value is not None and (value in ids or any(t in value for t in texts)):
                return True
    return False


def _read_data_file(uri: str, table: str) -> pa.Table:
    wanted = {"images": ["image_id"], "exclusions": list(EXCLUSION_URL_COLUMNS)}.get(table, _SIGHTING_COLUMNS)
    options = storage_options(uri)
    reader = LanceFileReader(uri, storage_options=options)
    present = [c for c in wanted if c in reader.metadata().schema.names]
    # A file written before a column was added lacks it; read what it has.
    data = LanceFileReader(uri, storage_options=options, columns=present).read_all().to_table() if present else pa.table({})
    for column in wanted:
        if column not in data.column_names:
            data = data.append_column(column, pa.nulls(data.num_rows, pa.string()))
    return data


def _log_row(report: RemovalReport, request: RemovalRequest) -> dict:
    return {
        "request_id": report.request_id,
        "received_at": report.received_at,
        "requester": report.requester,
        "basis": report.basis,
        "selectors": json.dumps(report.selectors),
        "rows_removed": report.rows_removed,
        "purged_at": report.purged_at,
        "reference": report.reference,
        "notice_json": json.dumps(request.notice) if request.notice is not None else None,
        "deadline": report.deadline,
        "images_removed": report.images_removed,
        "sightings_removed": report.sightings_removed,
        "near_matches_found": report.near_matches_found,
        "near_matches_removed": report.near_matches_removed,
    }


# -- the removal queue ----------------------------------------------------------------------


@dataclass
class RemovalStatus:
    request_id: str
    state: str  # "done", or "incomplete": tombstoned, not yet purged and logged (rerun it)
    basis: str | None
    requester: str | None
    reference: str | None
    selectors: list[dict]
    received_at: datetime | None
    deadline: datetime | None
    rows_removed: int | None
    purged_at: datetime | None
    flag: str | None  # "deadline passed", "deadline within 7 days", or None

    def to_json(self) -> dict:
        return asdict(self)


def list_removals(gallery: Gallery, *, now: datetime | None = None) -> list[RemovalStatus]:
    """Every request, oldest first: logged ones and those a crash left incomplete."""
    now = now or utcnow()
    statuses = []
    logged = gallery.removal_log_rows()
    for row in logged:
        statuses.append(
            RemovalStatus(
                request_id=row["request_id"],
                state="done",
                basis=row["basis"],
                requester=row["requester"],
                reference=row["reference"],
                selectors=json.loads(row["selectors"] or "[]"),
                received_at=row["received_at"],
                deadline=row["deadline"],
                rows_removed=row["rows_removed"],
                purged_at=row["purged_at"],
                flag=_deadline_flag(row["deadline"], now),
            )
        )
    done = {row["request_id"] for row in logged}
    incomplete: dict[str, list[dict]] = {}
    for row in gallery.tombstone_rows():
        if row["request_id"] not in done:
            incomplete.setdefault(row["request_id"], []).append(row)
    for request_id, rows in incomplete.items():
        received = min((r["received_at"] for r in rows if r["received_at"]), default=None)
        basis = rows[0]["basis"]
        deadline = erasure_deadline(basis, received) if received else None
        statuses.append(
            RemovalStatus(
                request_id=request_id,
                state="incomplete",
                basis=basis,
                requester=None,
                reference=None,
                selectors=[{"kind": r["kind"], "value": r["value"]} for r in rows if not r.get("match_group")],
                received_at=received,
                deadline=deadline,
                rows_removed=None,
                purged_at=None,
                flag=_deadline_flag(deadline, now),
            )
        )
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(statuses, key=lambda s: s.received_at or epoch)


def _deadline_flag(deadline: datetime | None, now: datetime) -> str | None:
    if deadline is None:
        return None
    if deadline < now:
        return "deadline passed"
    if deadline - now <= DEADLINE_WARNING:
        return "deadline within 7 days"
    return None
