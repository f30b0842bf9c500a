"""Processing a batch: plan each request, tombstone, delete, then purge once and verify each,
and log. The order is chosen so a crash at any point leaves something a rerun finishes:
match -> tombstones -> delete images -> delete sightings -> purge -> verify -> log.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from indexer.compat import delete_rows
from indexer.export.record import exports_containing
from indexer.purge_lock import PurgeLock
from indexer.removal.deadlines import erasure_deadline
from indexer.removal.errors import PurgeFailed
from indexer.removal.planning import Plan, Tables, plan_removal
from indexer.removal.purge import clear_page_cache, purge, verify_purged
from indexer.removal.requests import RemovalRequest
from indexer.removal.tombstones import tombstone_rows
from indexer.store import Gallery, utcnow
from indexer.store_errors import STORE_ERRORS, StoreError, describe_store_error

# Each delete commits a Lance version whose predicate is parsed in full: bounded lists stay fast.
DELETE_CHUNK = 4096


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
    progress: "Progress | None" = None,
) -> list[RemovalReport]:
    """Match, tombstone and delete each request in turn, then purge once and verify each.
    `progress(done, total, what)` is told after each request and before the purge and the
    verification, for a display.

    A request that would remove every row is refused (reported, nothing written) unless
    `yes_all`. Each request is matched after the ones before it, so counts never overlap.
    A store that fails a request stops the run with StoreError; rerunning finishes the work.
    """
    try:
        if dry_run:
            return _process(gallery, requests, dry_run=True, yes_all=yes_all, lock=None, progress=progress)
        return _serialized(gallery, requests, yes_all=yes_all, progress=progress)
    except PurgeFailed:
        raise
    except STORE_ERRORS as exc:
        raise StoreError(f"the removal stopped (rerun it to finish): {describe_store_error(exc)}") from exc


def _serialized(gallery: Gallery, requests: list[RemovalRequest], *, yes_all: bool, progress) -> list[RemovalReport]:
    """One removal at a time, across processes (CLI, service): the purge lock is held from the
    first look at the rows, so the "would remove every row" guard sees what an earlier removal
    left, and two requests that each match half the gallery cannot both pass it."""
    lock = PurgeLock(gallery.uri)
    with lock.exclusive():
        return _process(gallery, requests, dry_run=False, yes_all=yes_all, lock=lock, progress=progress)


def _process(
    gallery: Gallery, requests: list[RemovalRequest], *, dry_run: bool, yes_all: bool, lock: PurgeLock | None, progress=None
) -> list[RemovalReport]:
    tell = progress or (lambda done, total, what: None)
    total = len(requests)
    gallery.refresh()
    tables = Tables.for_batch(gallery, requests)  # one read of the tables for the whole batch
    done: list[_Pending] = []
    reports = []
    for index, request in enumerate(requests):
        if index:
            tell(index, total, _outcome(reports[-1]))
        clock = _Clock()
        item = _prepare(tables, request)
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
        rows = _tombstone_rows(item)
        gallery.add_tombstones(rows)
        tables.tombstone_rows += rows
        report.tombstones_written = len(rows)
        report.timings["tombstones"] = clock.lap()
        _delete_rows(gallery, plan)
        tables.forget(plan)
        report.sightings_removed, report.images_removed = len(plan.sighting_ids), len(plan.image_ids)
        report.timings["delete"] = clock.lap()
        done.append(item)
    if reports:
        tell(total, total, _outcome(reports[-1]))
    if not done:
        return reports
    versions = (gallery.images.version, gallery.sightings.version)
    assert lock is not None, "a removal that deletes holds the purge lock (_serialized)"
    clock = _Clock()
    gallery.refresh()
    if (gallery.images.version, gallery.sightings.version) != versions:
        # An append that began before the tombstones were written landed after the delete.
        # No append can run now, and every later one rereads the tombstones: catch up once.
        for item in done:
            _catch_up(gallery, item)
    tell(total, total, "purging removed rows from disk")
    purge(gallery, lock=lock)
    clear_page_cache(gallery.uri)
    purged_at, purge_seconds = utcnow(), clock.lap()
    tell(total, total, "verifying the purge")
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


Progress = Callable[[int, int, str], None]  # (requests done, requests in all, what happened or happens now)


def _outcome(report: RemovalReport) -> str:
    if report.refused:
        return f"request {report.request_id}: refused"
    if report.dry_run:
        return f"request {report.request_id}: would remove {report.sightings_matched + report.images_matched} rows"
    if report.already_done:
        return f"request {report.request_id}: already processed"
    return f"request {report.request_id}: removed {report.rows_removed} rows"


class _Clock:
    def __init__(self):
        self._last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        return round(elapsed, 4)


def _prepare(tables: Tables, request: RemovalRequest) -> _Pending:
    request_id = request.request_id
    mine = [t for t in tables.tombstone_rows if t["request_id"] == request_id]
    earlier_sha256 = {t["value"] for t in mine if t["kind"] == "sha256"}
    previous = tables.logged.get(request_id)
    received_at = request.received_at or (
        previous["received_at"] if previous else min((t["received_at"] for t in mine if t["received_at"]), default=None)
    ) or utcnow()
    plan = tables.plan(request, earlier_sha256=earlier_sha256)
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
        exports=exports_containing(tables.gallery, sighting_ids=plan.sighting_ids, image_ids=plan.image_ids),
    )
    if previous:
        report.already_done = not plan.sighting_ids and not plan.image_ids
        report.purged, report.purged_at = previous["purged_at"] is not None, previous["purged_at"]
    return _Pending(request, report, plan, earlier_sha256, logged=previous is not None)


def _tombstone_rows(item: _Pending) -> list[dict]:
    return tombstone_rows(
        item.request.selectors,
        request_id=item.report.request_id,
        basis=item.report.basis,
        received_at=item.report.received_at,
        hash_matched=item.plan.hash_matched,
    )


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
        delete_rows(gallery.exclusions, chunk)


def _chunks(values: list[str]):
    for start in range(0, len(values), DELETE_CHUNK):
        yield values[start : start + DELETE_CHUNK]


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
