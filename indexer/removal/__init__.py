"""Removal and takedown requests, by stage: `requests` (parsing and checking what is asked)
and `selectors` (one class per kind) -> `planning` (what each request removes, one read of the
tables per batch) -> `processing` (tombstones, deletes, the audit log) -> `purge` (rewrite,
clean up, verify on disk); `tombstones` (the table's rows, read back as the never-collect
matcher) and `queue` (every request and its deadline).
"""

from indexer.removal.deadlines import add_one_month, erasure_deadline
from indexer.removal.errors import PurgeFailed, RequestError
from indexer.removal.planning import Plan, Tables, plan_removal
from indexer.removal.processing import RemovalReport, process_requests
from indexer.removal.purge import Verification, clear_page_cache, purge, verify_purged
from indexer.removal.queue import RemovalStatus, list_removals
from indexer.removal.requests import BASES, LineError, RemovalRequest, build_request, parse_requests_file
from indexer.removal.selectors import SELECTOR_KINDS, SELECTORS, Selector, parse_selector
from indexer.removal.tombstones import TombstoneIndex, load_tombstones

__all__ = [
    "BASES",
    "SELECTORS",
    "SELECTOR_KINDS",
    "LineError",
    "Plan",
    "PurgeFailed",
    "RemovalReport",
    "RemovalRequest",
    "RemovalStatus",
    "RequestError",
    "Selector",
    "Tables",
    "TombstoneIndex",
    "Verification",
    "add_one_month",
    "build_request",
    "clear_page_cache",
    "erasure_deadline",
    "list_removals",
    "load_tombstones",
    "parse_requests_file",
    "parse_selector",
    "plan_removal",
    "process_requests",
    "purge",
    "verify_purged",
]
