"""Removal requests as stewards send them: one from options or the HTTP API, or a batch file
(CSV or JSON lines). Everything is checked here, before anything is written."""

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from indexer.removal.errors import RequestError
from indexer.removal.selectors import SELECTOR_KINDS, Selector, parse_selector
from indexer.store import utcnow

BASES = ("copyright", "erasure", "opt-out", "other")
# 17 U.S.C. § 512(c)(3)(A): the elements a takedown notice must contain, under our key names.
DMCA_NOTICE_FIELDS = (
    "signature",
    "copyrighted_work",
    "infringing_material",
    "contact",
    "good_faith_statement",
    "accuracy_statement",
)


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

    @property
    def url_selectors(self) -> list[Selector]:
        return [s for s in self.selectors if s.url_entry() is not None]


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
    if not isinstance(text, str):
        raise RequestError(f"received date {text!r} is not ISO 8601 text (YYYY-MM-DD)")
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RequestError(f"received date {text!r} is not ISO 8601 (YYYY-MM-DD)") from None
    return validate_received(parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc))


# A request cannot arrive in the future (a day's slack for time zones), nor before there were
# galleries; within these bounds every deadline computed from the date is a valid date too.
EARLIEST_RECEIVED = datetime(2000, 1, 1, tzinfo=timezone.utc)
RECEIVED_SLACK = timedelta(days=1)


def validate_received(received_at: datetime) -> datetime:
    if not EARLIEST_RECEIVED <= received_at <= utcnow() + RECEIVED_SLACK:
        raise RequestError(f"received date {received_at:%Y-%m-%d} is outside {EARLIEST_RECEIVED:%Y-%m-%d} .. today")
    return received_at


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
    for selector in parsed:
        notes += selector.notes()
    received_at = validate_received(received) if isinstance(received, datetime) else parse_received(received)
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
