"""The tombstones table's rows: written by a removal, read back as the never-collect matcher
the crawler and the indexer ask. This package keeps the table; the decision is
robots_policy/never_collect.py's."""

import hashlib
from datetime import datetime

from indexer.removal.selectors import Selector
from indexer.store import Gallery, utcnow
from robots_policy.never_collect import Entry, NeverCollect


class TombstoneIndex(NeverCollect):
    """A gallery's tombstones as the never-collect matcher."""

    @classmethod
    def from_rows(cls, rows: list[dict]) -> "TombstoneIndex":
        return cls(Entry(r["kind"], r["value"], r.get("match_group")) for r in rows)

    def blocks_image(self, *, image_id: str, phash: bytes | None, pdq: bytes | None) -> str | None:
        """The kind of tombstone the picture falls under, or None."""
        return self.image_match(sha256=image_id, phash=phash, pdq=pdq)


def load_tombstones(gallery: Gallery) -> TombstoneIndex:
    return TombstoneIndex.from_rows(gallery.tombstone_rows())


def tombstone_rows(
    selectors: list[Selector],
    *,
    request_id: str,
    basis: str,
    received_at: datetime,
    hash_matched: list[str],
) -> list[dict]:
    """The rows a request leaves: each selector's own, plus the exact bytes of every picture it
    matched, so a copy at another URL is refused outright."""
    entries = [entry for selector in selectors for entry in selector.tombstones(request_id)]
    entries += [Entry("sha256", image_id) for image_id in hash_matched]
    created = utcnow()
    rows = []
    for entry in dict.fromkeys(entries):
        key = "\n".join((entry.kind, entry.value, request_id, entry.match_group or "")).encode()
        rows.append(
            {
                "tombstone_id": hashlib.sha256(key).hexdigest(),
                "kind": entry.kind,
                "value": entry.value,
                "request_id": request_id,
                "created_at": created,
                "match_group": entry.match_group,
                "basis": basis,
                "received_at": received_at,
            }
        )
    return rows
