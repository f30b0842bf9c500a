"""Turning analyzed images and their sightings into gallery rows: exact and near-duplicate
decisions, then batched, idempotent appends.

`add` runs on the caller's thread and only touches memory; `write` does the I/O and is
meant for a worker thread, one batch at a time.
"""

from dataclasses import dataclass, field
from datetime import datetime

from indexer.analyze import AnalyzedImage
from indexer.hash_index import NearDuplicateFinder
from indexer.hashes import ImageHashes
from indexer.matcher import QueryPicture, Variant, verify
from indexer.purge_lock import PurgeLock
from indexer.records import Sighting, sighting_row
from indexer.removal import load_tombstones
from indexer.store import Gallery, utcnow
from indexer.store_errors import STORE_ERRORS, StoreError, describe_store_error


@dataclass
class Batch:
    images: list[dict] = field(default_factory=list)
    sightings: list[dict] = field(default_factory=list)
    resighted: list[str] = field(default_factory=list)  # image_ids already stored, seen again

    def __len__(self) -> int:
        return len(self.images) + len(self.sightings)


@dataclass(frozen=True)
class WriteResult:
    images: int
    sightings: int
    near_duplicates: int
    # (image_url, page_url) of the sightings dropped at write time: a removal tombstoned them meanwhile.
    dropped: tuple[tuple[str, str], ...] = ()

    @property
    def blocked(self) -> int:
        return len(self.dropped)


class BatchWriteFailed(StoreError):
    """The store refused or failed part of a batch. Each table's append is one commit, so a
    table has the batch's rows or none of them; `written` counts what was committed."""

    def __init__(self, message: str, *, written: WriteResult):
        super().__init__(message)
        self.written = written


# Every this many writes the writer compacts the tables it appends to (Gallery.compact): each
# write adds a small file to each, and reads and merges walk them all (benchmarks/memory.py).
COMPACT_EVERY_WRITES = 32


class GalleryWriter:
    def __init__(self, gallery: Gallery, *, batch_size: int = 64, compact_every: int | None = COMPACT_EVERY_WRITES):
        """`compact_every`: writes between compactions; None never compacts."""
        self.gallery = gallery
        self.batch_size = batch_size
        self.compact_every = compact_every
        self._writes = 0
        self._known_ids = gallery.image_ids()
        self._stored_before = set(self._known_ids)
        self._batch = Batch()
        self.lock = PurgeLock(gallery.uri)
        self._near = NearDuplicateFinder(gallery)
        # Flat or blank pictures queued for the next write: never near-duplicates by hash alone.
        self._unclustered: set[str] = set()
        # For settle_near_duplicates: the images this writer stored with detail (the same strings
        # as _known_ids: a set entry each), the flat ones (they cluster with nothing), how many
        # it marked, and the cluster heads each image found itself between (a merge to make).
        self._written: set[str] = set()
        self._written_flat: set[str] = set()
        self._near_marked = 0
        self._merges: list[set[str]] = []
        self._load_tombstones()

    def _load_tombstones(self) -> None:
        self._tombstones_version = self.gallery.tombstones.version
        self.tombstones = load_tombstones(self.gallery)

    def tombstoned(self, image: AnalyzedImage, sighting: Sighting) -> str | None:
        """The kind of tombstone this image or where it was found falls under, or None."""
        if self.tombstones.blocks_url(sighting.image_url) or self.tombstones.blocks_url(sighting.page_url):
            return "url"
        return self.tombstones.blocks_image(image_id=image.image_id, phash=image.hashes.phash, pdq=image.hashes.pdq)

    def tombstoned_resighting(self, image_id: str, sighting: Sighting) -> str | None:
        """The same, for a stored image seen again without its bytes (the server answered "not
        modified"). Its hashes need no check: a removal deletes every stored image its tombstones
        match, and `write` drops sightings of images a removal purged meanwhile."""
        if self.tombstones.blocks_url(sighting.image_url) or self.tombstones.blocks_url(sighting.page_url):
            return "url"
        return "sha256" if image_id in self.tombstones.sha256 else None

    def is_stored(self, image_id: str) -> bool:
        """Whether the gallery holds this image (or it is queued), as of the last write."""
        return image_id in self._known_ids

    def add(self, image: AnalyzedImage, sighting: Sighting) -> bool:
        """Queue an image and where it was seen; False if its exact bytes are already known."""
        is_new = image.image_id not in self._known_ids
        if is_new:
            self._known_ids.add(image.image_id)
            self._batch.images.append(_image_row(image, seen_at=sighting.fetched_at))
            if image.hashes.low_information:
                self._unclustered.add(image.image_id)
        self.add_sighting(image.image_id, sighting)
        return is_new

    def add_sighting(self, image_id: str, sighting: Sighting) -> None:
        self._batch.sightings.append(sighting_row(image_id, sighting))
        if image_id in self._stored_before:
            self._batch.resighted.append(image_id)

    def batch_ready(self) -> bool:
        return len(self._batch) >= self.batch_size

    def take_batch(self) -> Batch:
        batch, self._batch = self._batch, Batch()
        return batch

    def write(self, batch: Batch) -> WriteResult:
        """Mark near-duplicates, then append. Images go first: a sighting never points at nothing.

        Holds the purge lock shared: a purge's cleanup must not delete an append's files mid-write
        (nor a compaction's: every `compact_every`-th write compacts the tables first).
        Raises BatchWriteFailed, saying what was committed, when the store fails a request.
        """
        written = WriteResult(0, 0, 0)
        try:
            with self.lock.shared():
                # A removal may have run since this writer opened: read past its purge, honour its tombstones.
                self.gallery.refresh()
                self._writes += 1
                if self.compact_every and self._writes % self.compact_every == 0:
                    self.gallery.compact()  # before the near-duplicate index reads the fragments
                after_removal = self.gallery.tombstones.version != self._tombstones_version
                if after_removal:
                    self._load_tombstones()
                dropped = self._drop_tombstoned(batch, after_removal=after_removal) if self.tombstones else ()
                self._near.refresh(rebuild=after_removal)  # every write: a removal's rebuild is never skipped
                flat = self._unclustered & {row["image_id"] for row in batch.images}
                near, merges = self._mark_near_duplicates(batch.images)
                self.gallery.add_images(batch.images)
                self._written_flat |= flat
                self._written.update(r["image_id"] for r in batch.images if r["image_id"] not in flat)
                self._near_marked += near
                self._merges += merges
                written = WriteResult(len(batch.images), 0, near, dropped)
                self.gallery.add_sightings(batch.sightings)
                written = WriteResult(len(batch.images), len(batch.sightings), near, dropped)
                self.gallery.touch_images(sorted(set(batch.resighted)), utcnow())
        except STORE_ERRORS as exc:
            message = f"writing to the gallery at {self.gallery.uri} failed: {describe_store_error(exc)}"
            raise BatchWriteFailed(message, written=written) from exc
        return written

    def _drop_tombstoned(self, batch: Batch, *, after_removal: bool) -> tuple[tuple[str, str], ...]:
        """Drop queued rows that tombstones now cover; returns the sightings dropped. The caller
        checks each image before queueing it: this catches what a removal tombstoned meanwhile."""
        queued = {r["image_id"] for r in batch.images}
        if after_removal:
            stored = self.gallery.image_ids()
            # In place: the caller's thread may be adding to these while this runs in a worker.
            self._known_ids -= self._known_ids - stored - queued  # purged: no longer known
            self._stored_before = stored
        allowed = {
            r["image_id"]
            for r in batch.images
            if not self.tombstones.blocks_image(image_id=r["image_id"], phash=r["phash"], pdq=r["pdq"])
        }
        kept = [
            s
            for s in batch.sightings
            if (s["image_id"] in allowed or (s["image_id"] in self._known_ids and s["image_id"] not in queued))
            and not self.tombstones.blocks_url(s["image_url"])
            and not self.tombstones.blocks_url(s["page_url"])
        ]
        with_sighting = {s["image_id"] for s in kept}
        kept_ids = {id(s) for s in kept}
        dropped = tuple((s["image_url"], s["page_url"]) for s in batch.sightings if id(s) not in kept_ids)
        batch.sightings = kept
        batch.images = [r for r in batch.images if r["image_id"] in allowed and r["image_id"] in with_sighting]
        batch.resighted = [i for i in batch.resighted if i in with_sighting and i in self._stored_before]
        self._known_ids -= queued - {r["image_id"] for r in batch.images}
        return dropped

    def _mark_near_duplicates(self, rows: list[dict]) -> tuple[int, list[set[str]]]:
        """Point each row with a near neighbour (stored, or earlier in the batch) at that
        neighbour's cluster head; returns how many, and the sets of heads a row found itself
        between (clusters it joins, for settle_near_duplicates)."""
        count, merges = 0, []
        ids = {row["image_id"] for row in rows}
        unclustered = self._unclustered & ids
        self._unclustered -= ids
        rows_with_detail = [row for row in rows if row["image_id"] not in unclustered]
        # The matcher's rule on the hashes both sides store (a new picture is hashed upright
        # only: mirrored copies are found by search, not clustered).
        pictures = [QueryPicture(row["image_id"], (Variant("identity", "white", ImageHashes(row["phash"], row["pdq"])),)) for row in rows_with_detail]
        stored = self._near.neighbours(pictures)
        for index, row in enumerate(rows_with_detail):
            heads = self._cluster_heads(pictures[index], stored[index], rows_with_detail[:index])
            if heads:
                row["duplicate_of"] = heads[0]
                count += 1
            if len(heads) > 1:
                merges.append(set(heads))
        return count, merges

    def _cluster_heads(self, picture: QueryPicture, stored: dict[str, str], earlier_in_batch: list[dict]) -> list[str]:
        """The heads of the clusters of a row's near neighbours (`stored`: the finder's), earlier
        in the batch first, then stored, best first; this writer's flat pictures are nobody's neighbours."""
        heads = [other["duplicate_of"] or other["image_id"] for other, how in zip(earlier_in_batch, verify(picture, earlier_in_batch)) if how]
        heads += [head for image_id, head in stored.items() if image_id not in self._written_flat]
        return list(dict.fromkeys(heads))

    def settle_near_duplicates(self) -> int:
        """Make this writer's near-duplicate count independent of the order its images came in,
        and return it.

        Marking as images arrive is greedy: with A~B and B~C but not A~C, the order A, B, C
        marks B and C, while A, C, B marks only B, C having had no neighbour yet: a second head
        in what is one cluster. B found itself between two heads; here each such set of heads
        becomes one: the stored cluster's head where there is one, else one of this writer's,
        and the others (this writer's own) point at it with what pointed at them. A cluster of
        n new images then counts n - 1 near-duplicates (n when it joins a stored one), in any
        order. Only clusters that merged are rewritten: a few updates, no lookups.
        """
        if not self._merges:
            return self._near_marked
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for heads in self._merges:
            first, *rest = heads
            for other in rest:
                parent[root(other)] = root(first)
        groups: dict[str, set[str]] = {}
        for head in list(parent):
            groups.setdefault(root(head), set()).add(head)
        settled = self._near_marked
        with self.lock.shared():
            self.gallery.refresh()
            present = self.gallery.image_ids()  # a removal may have taken some meanwhile
            for group in groups.values():
                mine = {head for head in group if head in self._written and head in present}
                stored = group - self._written
                keep = min(stored) if stored else min(mine, default=None)
                dropped = sorted(mine - {keep})
                if keep is None or not dropped:
                    continue
                self.gallery.set_duplicate_of(dropped, keep, also_pointing_at=True)
                settled += len(dropped)
        self._merges = []
        self._near_marked = settled
        return settled


def _image_row(image: AnalyzedImage, *, seen_at: datetime) -> dict:
    return {
        "image_id": image.image_id,
        "phash": image.hashes.phash,
        "pdq": image.hashes.pdq,
        "regions": image.regions,
        "words": image.words,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "bytes": image.bytes,
        "face_count": image.face_count,
        "face_uncertain": image.face_uncertain,
        "thumbnail": image.thumbnail,
        "first_seen": seen_at,
        "last_seen": seen_at,
        "duplicate_of": None,
    }
