"""Removal processing against a real LanceDB gallery in tmp_path."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lance.file import LanceFileReader
import skimage.data
from PIL import Image, ImageOps

from gallery.demo import make_picture
from indexer import removal
from indexer.analyze import AnalyzedImage, analyze_image
from indexer.faces import FaceDetector
from indexer.ingest import GalleryWriter
from indexer.removal import (
    RequestError,
    TombstoneIndex,
    add_one_month,
    build_request,
    list_removals,
    parse_requests_file,
    process_requests,
    verify_purged,
)
from indexer.search import search_hash
from indexer.store import Gallery
from tests.fixture_site import jpeg_bytes, sighting

# (seed, image URL, page URL): seed 1 is published twice, on two sites.
LAYOUT = [
    (1, "http://a.example.com/img/one.jpg", "http://a.example.com/page"),
    (1, "http://mirror.test/one.jpg", "http://mirror.test/"),
    (2, "http://b.example.com/img/two.jpg", "http://b.example.com/page"),
    (3, "http://example.org/photos/three.jpg", "http://example.org/photos/"),
    (4, "http://example.org/other/four.jpg", "http://example.org/other/"),
]


@pytest.fixture(scope="module")
def pictures():
    detector = FaceDetector()
    # Seed 5 is not in the gallery: a picture a crawl finds for the first time.
    return {seed: analyze_image(jpeg_bytes(make_picture(seed)), detector=detector) for seed in (1, 2, 3, 4, 5)}


@pytest.fixture
def gallery(tmp_path, pictures) -> Gallery:
    store = Gallery(str(tmp_path / "g"))
    writer = GalleryWriter(store)
    for seed, image_url, page_url in LAYOUT:
        writer.add(pictures[seed], sighting(image_url, page_url))
    writer.write(writer.take_batch())
    return store


def _urls(store: Gallery) -> set[str]:
    store.refresh()
    return set(store.sightings.to_arrow()["image_url"].to_pylist())


def _remove(store: Gallery, *selectors, **kwargs):
    options = {k: kwargs.pop(k) for k in ("dry_run", "yes_all") if k in kwargs}
    [report] = process_requests(store, [build_request(list(selectors), **kwargs)], **options)
    return report


# -- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("hash", "ab" * 32, "ambiguous"),
        ("hash", "pdq:abc", "must be 64 hex digits"),
        ("hash", "md5:" + "00" * 16, "unknown hash kind"),
        ("hash", "sha256:" + "zz" * 32, "not hexadecimal"),
        ("colour", "red", "unknown selector"),
        ("url", "ftp://example.com/x", r"not an http\(s\) URL"),
        ("url-prefix", "example.com/photos", r"not an http\(s\) URL"),
        ("domain", "co.uk", "public suffix"),
        ("domain", "https://example.com/", "not a host name"),
        ("image", "/nonexistent/picture.jpg", "cannot read"),
    ],
)
def test_bad_selectors_are_refused(kind, value, message):
    with pytest.raises(RequestError, match=message):
        build_request([(kind, value)])


def test_non_image_file_is_refused(tmp_path):
    bogus = tmp_path / "bogus.jpg"
    bogus.write_text("<html>not an image</html>")
    with pytest.raises(RequestError, match="not a usable image"):
        build_request([("image", str(bogus))])


def test_request_fields_are_checked(tmp_path):
    with pytest.raises(RequestError, match="unknown basis"):
        build_request([("domain", "example.com")], basis="because")
    with pytest.raises(RequestError, match="no selector"):
        build_request([])
    notice = tmp_path / "notice.json"
    notice.write_text(json.dumps({"signature": "/s/ A. Owner", "copyrighted_work": "Photo 1"}))
    with pytest.raises(RequestError, match="copyright"):
        build_request([("domain", "example.com")], basis="erasure", notice=notice)
    request = build_request([("domain", "example.com")], basis="copyright", notice=notice)
    assert request.notice["signature"] == "/s/ A. Owner"
    assert "infringing_material" in request.notes[0]


def test_same_request_same_id_whatever_the_spelling():
    a = build_request([("url", "HTTP://Example.COM:80/x#frag")], basis="erasure")
    b = build_request([("url", "http://example.com/x")], basis="erasure")
    assert a.request_id == b.request_id
    assert a.request_id != build_request([("url", "http://example.com/x")], basis="other").request_id


def test_erasure_deadline_is_one_calendar_month():
    assert add_one_month(datetime(2025, 1, 31, tzinfo=timezone.utc)).date().isoformat() == "2025-02-28"
    assert add_one_month(datetime(2024, 1, 31, tzinfo=timezone.utc)).date().isoformat() == "2024-02-29"
    assert add_one_month(datetime(2025, 12, 15, tzinfo=timezone.utc)).date().isoformat() == "2026-01-15"
    request = build_request([("domain", "example.com")], basis="erasure", received="2025-03-10")
    assert request.received_at == datetime(2025, 3, 10, tzinfo=timezone.utc)


# -- pure matching ---------------------------------------------------------------------------


def test_image_tombstones_need_both_hashes_when_paired(pictures):
    one, two = pictures[1], pictures[2]
    paired = TombstoneIndex.from_rows(
        [
            {"kind": "pdq", "value": one.hashes.pdq.hex(), "match_group": "g"},
            {"kind": "phash", "value": two.hashes.phash.hex(), "match_group": "g"},
        ]
    )
    assert paired.blocks_image(image_id="x", phash=one.hashes.phash, pdq=one.hashes.pdq) is None
    alone = TombstoneIndex.from_rows([{"kind": "pdq", "value": one.hashes.pdq.hex(), "match_group": None}])
    assert alone.blocks_image(image_id="x", phash=one.hashes.phash, pdq=one.hashes.pdq) == "pdq"
    assert alone.blocks_image(image_id="x", phash=two.hashes.phash, pdq=two.hashes.pdq) is None
    exact = TombstoneIndex.from_rows([{"kind": "sha256", "value": one.image_id, "match_group": None}])
    assert exact.blocks_image(image_id=one.image_id, phash=b"\0" * 8, pdq=b"\0" * 32) == "sha256"


def test_non_ascii_url_matches_what_sightings_store(tmp_path, pictures):
    # Issue 14 bug 1: a sighting (and a request) names the URL percent-encoded, as it was sent.
    store = Gallery(str(tmp_path / "g"))
    writer = GalleryWriter(store)
    writer.add(pictures[1], sighting("https://ex.org/fotos/%C3%A4%20b.jpg", "https://ex.org/fotos/"))
    writer.add(pictures[2], sighting("https://ex.org/fotos/other.jpg", "https://ex.org/fotos/"))
    writer.write(writer.take_batch())
    report = _remove(store, ("url", "https://Ex.org/fotos/ä b.jpg"))
    assert (report.sightings_removed, report.images_removed) == (1, 1)
    assert _urls(store) == {"https://ex.org/fotos/other.jpg"}
    tombstones = removal.load_tombstones(store)
    assert tombstones.blocks_url("https://ex.org/fotos/%C3%A4%20b.jpg")
    assert tombstones.blocks_url("https://EX.org/fotos/%c3%a4%20b.jpg")
    assert not tombstones.blocks_url("https://ex.org/fotos/other.jpg")
    prefix = TombstoneIndex.from_rows([{"kind": "url_prefix", "value": build_request([("url_prefix", "https://Ex.org/fotos/ä")]).selectors[0].value}])
    assert prefix.blocks_url("https://ex.org/fotos/%C3%A4%20b.jpg") and not prefix.blocks_url("https://ex.org/fotos/b.jpg")


# -- selectors against a gallery ---------------------------------------------------------------


def test_url_removes_its_sightings_and_orphaned_images(gallery, pictures):
    report = _remove(gallery, ("url", "http://a.example.com/img/one.jpg"))
    assert (report.sightings_removed, report.images_removed) == (1, 0)  # seed 1 is still on mirror.test
    assert "http://a.example.com/img/one.jpg" not in _urls(gallery)
    report = _remove(gallery, ("url", "http://mirror.test/"))  # a page URL
    assert (report.sightings_removed, report.images_removed) == (1, 1)
    assert pictures[1].image_id not in gallery.image_ids()
    assert report.purged and report.files_scanned > 0


def test_url_prefix(gallery):
    report = _remove(gallery, ("url_prefix", "http://example.org/photos/"))
    assert report.sightings_removed == 1
    assert _urls(gallery) & {"http://example.org/photos/three.jpg", "http://example.org/other/four.jpg"} == {
        "http://example.org/other/four.jpg"
    }


def test_domain_includes_subdomains(gallery):
    report = _remove(gallery, ("domain", "example.com"))
    assert report.sightings_removed == 2
    assert not [u for u in _urls(gallery) if "example.com" in u]
    assert "http://mirror.test/one.jpg" in _urls(gallery)


@pytest.mark.parametrize("kind", ["sha256", "pdq", "phash"])
def test_hash_removes_the_picture_everywhere(gallery, pictures, kind):
    target = pictures[1]
    value = {"sha256": target.image_id, "pdq": target.hashes.pdq.hex(), "phash": target.hashes.phash.hex()}[kind]
    report = _remove(gallery, ("hash", f"{kind}:{value}"))
    assert (report.sightings_removed, report.images_removed) == (2, 1)
    assert target.image_id not in gallery.image_ids()
    assert report.near_matches_found == report.near_matches_removed == 0


def test_image_finds_resized_and_mirrored_copies(gallery, pictures, tmp_path):
    copy = tmp_path / "copy.jpg"
    ImageOps.mirror(make_picture(2)).resize((300, 225)).save(copy, quality=60)
    report = _remove(gallery, ("image", str(copy)))
    assert (report.sightings_removed, report.images_removed) == (1, 1)
    assert report.near_matches_found >= 1 and report.near_matches_removed == 1
    assert pictures[2].image_id not in gallery.image_ids()
    # An unrelated picture matches nothing.
    other = tmp_path / "other.jpg"
    make_picture(99).save(other)
    assert _remove(gallery, ("image", str(other))).rows_removed == 0


# -- guarantees ---------------------------------------------------------------------------


def test_purge_leaves_no_trace_on_disk(gallery):
    request = build_request([("url_prefix", "http://example.org/photos/")])
    plan = removal.plan_removal(gallery, request)
    # A plain delete only masks rows: the verifier must see them (else it proves nothing).
    removal.processing._delete_rows(gallery, plan)
    leftover = verify_purged(gallery, request, image_ids=set(plan.image_ids), sighting_ids=set(plan.sighting_ids))
    assert {t.split("/")[0] for t in leftover.traces} == {"images", "sightings"}
    [report] = process_requests(gallery, [request])
    assert report.purged
    result = verify_purged(gallery, request, image_ids=set(plan.image_ids), sighting_ids=set(plan.sighting_ids))
    assert result.traces == [] and result.files_scanned > 0
    for path in Path(gallery.uri).glob("sightings.lance/**/*"):
        if path.is_file():
            assert b"example.org/photos" not in path.read_bytes(), path


def test_crash_between_tombstone_and_delete_then_rerun(gallery, monkeypatch):
    request = build_request([("domain", "example.org")], basis="erasure", requester="someone")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(removal.processing, "_delete_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        process_requests(gallery, [request])
    assert {t["kind"] for t in gallery.tombstone_rows()} == {"domain"}
    assert len([u for u in _urls(gallery) if "example.org" in u]) == 2  # nothing deleted yet
    [pending] = list_removals(gallery)
    assert pending.state == "incomplete" and pending.deadline is not None
    monkeypatch.undo()

    [report] = process_requests(gallery, [request])
    assert report.sightings_removed == 2 and report.purged
    [again] = process_requests(gallery, [request])
    assert again.already_done and again.rows_removed == 0
    assert len(gallery.removal_log_rows()) == 1
    assert len(gallery.tombstone_rows()) == 1
    [done] = list_removals(gallery)
    assert done.state == "done" and done.received_at == report.received_at


def test_match_everything_refused_unless_yes_all(gallery):
    before = gallery.counts()
    everything = [("domain", "example.com"), ("domain", "example.org"), ("domain", "mirror.test")]
    report = _remove(gallery, *everything)
    assert report.refused and gallery.counts() == before and gallery.tombstone_rows() == []
    report = _remove(gallery, *everything, yes_all=True)
    assert report.purged and (gallery.counts()["images"], gallery.counts()["sightings"]) == (0, 0)


def test_zero_matches_is_recorded(gallery):
    report = _remove(gallery, ("domain", "nowhere.test"), basis="opt-out")
    assert report.rows_removed == 0 and report.purged
    assert [row["rows_removed"] for row in gallery.removal_log_rows()] == [0]
    assert [(t["kind"], t["value"]) for t in gallery.tombstone_rows()] == [("domain", "nowhere.test")]


def test_dry_run_changes_nothing(gallery):
    before = (gallery.counts(), gallery.images.version, gallery.sightings.version)
    report = _remove(gallery, ("domain", "example.com"), dry_run=True)
    assert report.dry_run and report.sightings_matched == 2 and report.rows_removed == 0
    assert len(report.sample) == 2
    assert (gallery.counts(), gallery.images.version, gallery.sightings.version) == before
    assert gallery.tombstone_rows() == [] and gallery.removal_log_rows() == []


def test_deadline_flags(gallery):
    old = datetime.now(timezone.utc) - timedelta(days=40)
    soon = datetime.now(timezone.utc) - timedelta(days=26)
    _remove(gallery, ("domain", "a.test"), basis="erasure", received=old)
    _remove(gallery, ("domain", "b.test"), basis="erasure", received=soon)
    _remove(gallery, ("domain", "c.test"), basis="erasure")
    _remove(gallery, ("domain", "d.test"), basis="copyright", received=old)
    flags = [s.flag for s in list_removals(gallery)]
    assert flags == ["deadline passed", None, "deadline within 7 days", None]


# -- batches --------------------------------------------------------------------------------


def test_batch_reports_bad_lines_and_runs_good_ones(gallery, tmp_path):
    jsonl = tmp_path / "requests.jsonl"
    jsonl.write_text(
        "\n".join(
            [
                json.dumps({"url_prefix": "http://example.org/photos/", "basis": "copyright"}),
                "{not json",
                json.dumps({"hash": "ab" * 32}),
                json.dumps({"colour": "red"}),
                json.dumps({"domain": ["mirror.test"], "basis": "opt-out", "requester": "site owner"}),
            ]
        )
    )
    requests, errors = parse_requests_file(jsonl)
    assert [e.line for e in errors] == [2, 3, 4]
    assert "ambiguous" in errors[1].message and "unknown field" in errors[2].message
    reports = process_requests(gallery, requests)
    assert [r.sightings_removed for r in reports] == [1, 1]

    csv_file = tmp_path / "requests.csv"
    csv_file.write_text("url,domain,basis\nhttp://example.org/other/four.jpg,,other\n,example.com,nonsense\n")
    requests, errors = parse_requests_file(csv_file)
    assert len(requests) == 1 and [e.line for e in errors] == [3] and "unknown basis" in errors[0].message


def test_batch_is_planned_against_one_read_and_counts_do_not_overlap(gallery, pictures, monkeypatch):
    reads = []
    table_type = type(gallery.sightings)
    original = table_type.to_lance

    def counting(self):
        if self is gallery.sightings:
            reads.append(1)
        return original(self)

    monkeypatch.setattr(table_type, "to_lance", counting)

    def planned(requests):
        reads.clear()
        reports = process_requests(gallery, requests, dry_run=True)
        return len(reads), reports

    one, _ = planned([build_request([("domain", "example.org")])])
    several = [
        build_request([("domain", "example.org")]),
        build_request([("url_prefix", "http://example.org/photos/")]),
        build_request([("hash", f"sha256:{pictures[2].image_id}")]),
        build_request([("url", "http://mirror.test/one.jpg")]),
    ]
    many, _ = planned(several)
    assert many == one  # the sightings table is read once, whatever the batch's size
    monkeypatch.undo()
    reports = process_requests(gallery, several)
    # Each request is matched after the ones before it: example.org's photos went with the domain.
    assert [r.sightings_removed for r in reports] == [2, 0, 1, 1]
    assert [r.images_removed for r in reports] == [2, 0, 1, 0]  # seed 1 is still on a.example.com


# -- ingest and the lock -------------------------------------------------------------------


def test_writer_opened_before_a_removal_drops_what_it_tombstoned(gallery, pictures):
    writer = GalleryWriter(Gallery(gallery.uri))  # a crawl already running
    _remove(gallery, ("domain", "example.org"))
    writer.add(pictures[3], sighting("http://example.org/photos/three.jpg", "http://example.org/photos/"))
    writer.add(pictures[5], sighting("http://new.test/five.jpg", "http://new.test/"))
    result = writer.write(writer.take_batch())
    assert result.blocked == 1
    assert "http://example.org/photos/three.jpg" not in _urls(gallery)
    assert "http://new.test/five.jpg" in _urls(gallery)


def test_writer_checks_tombstones_before_storing(gallery, pictures, tmp_path):
    _remove(gallery, ("hash", f"pdq:{pictures[2].hashes.pdq.hex()}"))
    writer = GalleryWriter(Gallery(gallery.uri))
    near = analyze_image(jpeg_bytes(make_picture(2).resize((400, 300)), quality=50), detector=FaceDetector())
    assert near.image_id != pictures[2].image_id
    assert writer.tombstoned(near, sighting("http://x.test/2.jpg", "http://x.test/")) in ("sha256", "pdq")
    assert writer.tombstoned(pictures[3], sighting("http://x.test/3.jpg", "http://x.test/")) is None


def test_crops_of_a_picture_removed_by_image_stay_out(gallery, tmp_path):
    """A removal by image leaves its regions' hashes as tombstones: a later crawl refuses a crop
    of the picture (whole-picture hashes never match a crop of 20% a side), not other pictures."""
    removed, other = Image.fromarray(skimage.data.chelsea()), Image.fromarray(skimage.data.coffee())
    query = tmp_path / "removed.jpg"
    query.write_bytes(jpeg_bytes(removed))
    _remove(gallery, ("image", str(query)))
    writer = GalleryWriter(Gallery(gallery.uri))
    detector = FaceDetector()

    def crop(img: Image.Image, box: tuple[float, float, float, float]) -> AnalyzedImage:
        w, h = img.size
        part = img.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))
        return analyze_image(jpeg_bytes(part.resize((part.width * 3 // 4, part.height * 3 // 4)), quality=75), detector=detector)

    for box in [(0.2, 0.2, 0.8, 0.8), (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]:
        assert writer.tombstoned(crop(removed, box), sighting("http://x.test/crop.jpg", "http://x.test/")) == "pdq+phash", box
        assert writer.tombstoned(crop(other, box), sighting("http://x.test/other.jpg", "http://x.test/")) is None, box
    assert writer.tombstoned(crop(other, (0, 0, 1, 1)), sighting("http://x.test/other.jpg", "http://x.test/")) is None


def test_append_landing_after_the_delete_is_caught_before_purge(gallery, pictures, monkeypatch):
    delete = removal.processing._delete_rows
    in_flight = [pictures[5]]

    def delete_then_append(store, plan):
        delete(store, plan)
        # An append already past its tombstone check when the tombstones were written.
        while in_flight:
            crawl = Gallery(store.uri)  # another process's handle
            writer = GalleryWriter(crawl)
            writer.tombstones = TombstoneIndex()  # it read them before the removal wrote any
            writer.add(in_flight.pop(), sighting("http://example.org/late.jpg", "http://example.org/late"))
            batch = writer.take_batch()
            crawl.add_images(batch.images)
            crawl.add_sightings(batch.sightings)

    monkeypatch.setattr(removal.processing, "_delete_rows", delete_then_append)
    report = _remove(gallery, ("domain", "example.org"))
    assert report.purged and report.sightings_removed == 3
    assert not [u for u in _urls(gallery) if "example.org" in u]


def test_a_crawl_compacting_around_a_removal_leaves_no_trace(tmp_path, pictures):
    """The writer compacts under the purge lock, here at every write: a removal between two
    compactions still purges every trace, and the next compaction brings none back."""
    store = Gallery(str(tmp_path / "g"))
    writer = GalleryWriter(store, compact_every=1)
    for seed, image_url, page_url in LAYOUT:
        writer.add(pictures[seed], sighting(image_url, page_url))
        writer.write(writer.take_batch())  # a small fragment each, merged by the next write
    assert len(store.sightings.to_lance().get_fragments()) == 2
    request = build_request([("domain", "example.org")])
    plan = removal.plan_removal(store, request)
    report = _remove(store, ("domain", "example.org"))
    writer.add(pictures[5], sighting("http://new.test/five.jpg", "http://new.test/"))
    writer.write(writer.take_batch())  # compacts the purged tables
    assert report.purged and report.sightings_removed == 2
    assert "http://new.test/five.jpg" in _urls(store) and not [u for u in _urls(store) if "example.org" in u]
    result = verify_purged(store, request, image_ids=set(plan.image_ids), sighting_ids=set(plan.sighting_ids))
    assert result.traces == [] and result.files_scanned > 0


def test_lookup_indexes_keep_no_removed_id(gallery, pictures):
    writer = GalleryWriter(gallery, compact_every=None)  # no compaction may merge the fragment below
    writer.add(pictures[5], sighting("http://solo.test/5.jpg", "http://solo.test/"))
    writer.write(writer.take_batch())  # its own fragment: the removal drops it whole, no rewrite
    gallery.index_lookup_columns()
    report = _remove(gallery, ("domain", "solo.test"))
    assert report.purged and report.images_removed == 1
    index_files = list(Path(gallery.uri).glob("*.lance/_indices/*/*.lance"))
    assert index_files
    for path in index_files:
        table = LanceFileReader(str(path)).read_all().to_table()
        values = {v for column in table.columns if str(column.type) == "string" for v in column.to_pylist()}
        assert pictures[5].image_id not in values, path
    # The rebuilt index still finds what is left.
    hits = search_hash(gallery, "sha256", bytes.fromhex(pictures[1].image_id))
    assert [h.image["image_id"] for h in hits] == [pictures[1].image_id]
