"""Planning: which sightings, images and exclusion-log rows each request of a batch removes,
decided before anything is written, against one read of the tables for the whole batch."""

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indexer.compat import ROW_ID, rows_with_ids
from indexer.hash_index import HammingIndex
from indexer.removal.requests import RemovalRequest
from indexer.removal.selectors import Selector
from indexer.store import Gallery, _in_list
from robots_policy.never_collect import NeverCollect, canonical_host

SAMPLE_SIZE = 5
SIGHTING_COLUMNS = ["sighting_id", "image_id", "image_url", "page_url"]
EXCLUSION_URL_COLUMNS = ("url", "page_url")
_HOST_PATTERN = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/@?#]*@)?(?P<host>\[[^\]]*\]|[^:/?#]*)"


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


def url_mask(table: pa.Table, selectors: list[Selector], columns=("image_url", "page_url")) -> pa.ChunkedArray:
    """Rows whose URL columns (a sighting's image_url and page_url) fall under any url,
    url_prefix or domain selector, as the never-collect matcher decides."""
    matcher = NeverCollect(s.url_entry() for s in selectors if s.url_entry() is not None)
    mask = pa.array(np.zeros(table.num_rows, dtype=bool))
    for column in columns:
        urls = pc.fill_null(table[column], "")
        hosts = pc.fill_null(pc.utf8_lower(pc.struct_field(pc.extract_regex(urls, _HOST_PATTERN), [0])), "")
        # Decide per distinct host in bulk; only rows on a host a URL or prefix names are read one by one.
        canonical = {h: canonical_host(h) for h in pc.unique(hosts).to_pylist() if h}
        whole = [h for h, c in canonical.items() if matcher.domain_match(c)]
        mask = pc.or_(mask, pc.is_in(hosts, value_set=pa.array(whole, pa.string())))
        named = [h for h, c in canonical.items() if c in matcher.url_hosts and h not in whole]
        if not named:
            continue
        indices = pc.indices_nonzero(pc.is_in(hosts, value_set=pa.array(named, pa.string()))).to_pylist()
        values = pc.take(urls, pa.array(indices, pa.int64())).to_pylist()
        hits = [i for i, url in zip(indices, values) if matcher.blocks_url(url)]
        if hits:
            flags = np.zeros(table.num_rows, dtype=bool)
            flags[hits] = True
            mask = pc.or_(mask, pa.array(flags))
    return mask


class Tables:
    """A batch's view of the gallery: each table read at most once, then kept current with
    what the batch's own deletes took out (`forget`), so each request is matched after the
    ones before it and counts never overlap."""

    def __init__(self, gallery: Gallery, *, full_sightings: bool = True):
        self.gallery = gallery
        self.tombstone_rows = gallery.tombstone_rows()
        self.logged = {row["request_id"]: row for row in gallery.removal_log_rows()}
        # A single request naming only pictures reads just their sightings; anything else
        # (URL selectors, or several requests) reads the URL columns once for all.
        self._full_sightings = full_sightings
        self._sightings: pa.Table | None = None
        self._exclusions: pa.Table | None = None
        self._image_ids: set[str] | None = None
        self._hashes: tuple[pa.Table, list[str], dict[str, HammingIndex]] | None = None
        self._total_sightings = gallery.sightings.count_rows()
        self._total_images = gallery.images.count_rows()
        self._gone_sightings: set[str] = set()
        self._gone_images: set[str] = set()
        self._gone_exclusions: set[int] = set()

    @classmethod
    def for_batch(cls, gallery: Gallery, requests: list[RemovalRequest]) -> "Tables":
        return cls(gallery, full_sightings=len(requests) > 1 or any(r.url_selectors for r in requests))

    # -- reads, each at most once ---------------------------------------------------------------

    def sightings(self) -> pa.Table:
        if self._sightings is None:
            self._sightings = self.gallery.sightings.to_lance().to_table(columns=SIGHTING_COLUMNS)
        return _without(self._sightings, "sighting_id", self._gone_sightings)

    def sightings_of(self, image_ids: set[str]) -> pa.Table:
        if self._full_sightings or self._sightings is not None:
            table = self.sightings()
            return table.filter(pc.is_in(table["image_id"], value_set=pa.array(sorted(image_ids), pa.string())))
        filtered = _in_list("image_id", sorted(image_ids))
        return _without(self.gallery.sightings.to_lance().to_table(columns=SIGHTING_COLUMNS, filter=filtered), "sighting_id", self._gone_sightings)

    def exclusions(self) -> pa.Table:
        if self._exclusions is None:
            self._exclusions = rows_with_ids(self.gallery.exclusions.to_lance(), list(EXCLUSION_URL_COLUMNS))
        return _without(self._exclusions, ROW_ID, self._gone_exclusions, pa.uint64())

    def stored_images(self, image_ids: set[str]) -> set[str]:
        if not image_ids:
            return set()
        if self._image_ids is None and len(image_ids) <= 1000:
            # A few ids: look them up (a BTREE index) rather than read the whole column.
            found = self.gallery.images.to_lance().to_table(columns=["image_id"], filter=_in_list("image_id", sorted(image_ids)))
            return set(found["image_id"].to_pylist()) - self._gone_images
        if self._image_ids is None:
            self._image_ids = self.gallery.image_ids()
        return (image_ids & self._image_ids) - self._gone_images

    def within(self, kind: str, value: bytes, max_distance: int) -> dict[str, int]:
        """Every stored image within max_distance (exact: an in-memory multi-index, no approximate index)."""
        if kind == "sha256":
            return {image_id: 0 for image_id in self.stored_images({value.hex()})}
        _, ids, indexes = self._hash_indexes()
        hits = indexes[kind].search(value, max_distance=max_distance, limit=max(1, indexes[kind].size))
        return {ids[hit.row]: hit.distance for hit in hits if ids[hit.row] not in self._gone_images}

    def candidates(self, kind: str, values: list[bytes], max_distance: int) -> list[dict]:
        """The matcher's hash source (indexer/matcher.py): rows with image_id, pdq, phash."""
        if kind == "sha256":
            return [{"image_id": i, "pdq": None, "phash": None} for v in values for i in self.within(kind, v, max_distance)]
        table, _, indexes = self._hash_indexes()
        found = indexes[kind].within_any(values, max_distance=max_distance)
        rows = table.take(pa.array(found, pa.int64())).to_pylist()
        return [row for row in rows if row["image_id"] not in self._gone_images]

    def _hash_indexes(self) -> tuple[pa.Table, list[str], dict[str, HammingIndex]]:
        if self._hashes is None:
            table = self.gallery.images.to_lance().to_table(columns=["image_id", "pdq", "phash"]).combine_chunks()
            indexes = {k: HammingIndex.from_arrow(table[k]) for k in ("pdq", "phash")}
            self._hashes = (table, table["image_id"].to_pylist(), indexes)
        return self._hashes

    # -- planning -------------------------------------------------------------------------------

    def plan(self, request: RemovalRequest, *, earlier_sha256: set[str] = frozenset()) -> Plan:
        """Which sightings and images the request removes. `earlier_sha256`: images this request
        already tombstoned (a resumed run), so sightings whose image row went first still match."""
        url_selectors = request.url_selectors
        exact, near_found, near_removed = set(), set(), set()
        for selector in request.selectors:
            match = selector.match_pictures(self)
            exact |= match.exact
            near_found |= match.found
            near_removed |= match.removed
        hash_matched = exact | near_removed | set(earlier_sha256)
        orphans: set[str] = set()
        if url_selectors:
            # URLs are matched in canonical form, which a pushed-down filter cannot do: scan.
            sightings = self.sightings()
            mask = url_mask(sightings, url_selectors)
            if hash_matched:
                mask = pc.or_(mask, pc.is_in(sightings["image_id"], value_set=pa.array(sorted(hash_matched))))
            removed = sightings.filter(mask)
            kept_images = set(pc.unique(sightings.filter(pc.invert(mask))["image_id"]).to_pylist())
            orphans = set(removed["image_id"].to_pylist()) - kept_images
        elif hash_matched:
            removed = self.sightings_of(hash_matched)  # a picture's sightings all go with it
        else:
            removed = pa.table({c: pa.array([], pa.string()) for c in SIGHTING_COLUMNS})
        exclusion_rowids = []
        if url_selectors:
            logged = self.exclusions()
            exclusion_rowids = logged.filter(url_mask(logged, url_selectors, EXCLUSION_URL_COLUMNS))[ROW_ID].to_pylist()
        sample = [{"image_url": r["image_url"], "page_url": r["page_url"]} for r in removed.slice(0, SAMPLE_SIZE).to_pylist()]
        return Plan(
            sighting_ids=sorted(removed["sighting_id"].to_pylist()),
            image_ids=sorted(self.stored_images(hash_matched | orphans)),
            hash_matched=sorted(exact | near_removed),
            near_found=len(near_found),
            near_removed=len(near_removed),
            sample=sample,
            total_sightings=self._total_sightings - len(self._gone_sightings),
            total_images=self._total_images - len(self._gone_images),
            exclusion_rowids=exclusion_rowids,
        )

    def forget(self, plan: Plan) -> None:
        """The plan's rows were deleted: later requests of the batch no longer see them."""
        self._gone_sightings |= set(plan.sighting_ids)
        self._gone_images |= set(plan.image_ids)
        self._gone_exclusions |= set(plan.exclusion_rowids)


def plan_removal(gallery: Gallery, request: RemovalRequest, *, earlier_sha256: set[str] = frozenset()) -> Plan:
    """One request planned against a fresh read of the gallery."""
    return Tables.for_batch(gallery, [request]).plan(request, earlier_sha256=earlier_sha256)


def _without(table: pa.Table, column: str, gone: set, kind=pa.string()) -> pa.Table:
    if not gone:
        return table
    return table.filter(pc.invert(pc.is_in(table[column], value_set=pa.array(list(gone), kind))))
