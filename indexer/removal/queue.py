"""The removal queue: every request, done or left incomplete by a crash, with its deadline."""

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone

from indexer.removal.deadlines import erasure_deadline
from indexer.store import Gallery, utcnow

DEADLINE_WARNING = timedelta(days=7)


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
