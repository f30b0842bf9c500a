"""How the gallery's tables live with many small commits: a commit another writer beat is tried
again, and the small data files and old versions the commits leave behind are merged and dropped."""

import random
import time
from datetime import timedelta

# Workers writing one gallery at once (a shared frontier) race for each table's next version.
# LanceDB retries some operations itself (merge_insert, for 30 s); index builds, updates and
# merge_inserts that ran out of that time fail with this, and are safe to run again.
CONFLICT_ATTEMPTS = 6


def is_commit_conflict(exc: Exception) -> bool:
    """Whether Lance refused a commit because another one took its version first (LanceDB
    raises RuntimeError for it, pylance OSError)."""
    return "commit conflict" in str(exc).lower()


def retry_conflicts(table, operation):
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return operation()
        except RuntimeError as exc:
            if not is_commit_conflict(exc) or attempt == CONFLICT_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2**attempt * (1 + random.random()))  # back off, out of step with the other writer
            table.checkout_latest()  # the retry must see what the winner committed


# Rows per data file after a compaction. Lance rewrites every file smaller than this, so one
# compaction rewrites the files committed since the last one plus at most one partly filled
# file: bounded work however large the table grows (at Lance's default, a million rows, each
# compaction would rewrite the whole table).
ROWS_PER_FILE = 8192

# How long a compacted-away version stays readable: a reader that opened the table this long
# ago (the search service in the middle of a request, another crawl worker between two writes,
# an export) still finds its files; one pinned longer may not. Older versions, and the
# files only they use, are deleted.
VERSION_RETENTION = timedelta(hours=1)


def compact_files(dataset, *, every_deleted_row: bool = False) -> None:
    """Merge a Lance dataset's small data files (one per commit) into files of about
    ROWS_PER_FILE rows, leaving out deleted rows of the files it rewrites. With
    `every_deleted_row`, every file holding a deleted row is rewritten too (a purge); else only
    those with Lance's default share of them. `dataset` moves to the version it commits."""
    threshold = 0.0 if every_deleted_row else None
    dataset.optimize.compact_files(
        target_rows_per_fragment=ROWS_PER_FILE, materialize_deletions=True, materialize_deletions_threshold=threshold
    )


def compact_table(table) -> None:
    """Compact a LanceDB table's files and drop its versions older than VERSION_RETENTION.
    A compaction another writer's commit overtook is left to the next call."""
    dataset = table.to_lance()
    try:
        compact_files(dataset)
    except OSError as exc:  # pylance's commit conflict
        if not is_commit_conflict(exc):
            raise
    else:
        # Files a failed commit left are kept (delete_unverified off): another writer's may be in flight.
        dataset.cleanup_old_versions(older_than=VERSION_RETENTION)
    table.checkout_latest()
