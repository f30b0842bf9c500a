"""Export: parquet / WebDataset / JSON lines shards of one pinned gallery version, a manifest,
and the record a later removal reads to name the exports that held removed rows."""

import errno
import hashlib
import io
import json
import shutil
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from indexer.export import ExportError, ExportOptions, Filters, run_export
from indexer.export.rows import ExportRows, PinnedGallery, hash_text
from indexer.hashes import format_hash
from indexer.ingest import GalleryWriter
from indexer.removal import build_request, process_requests
from indexer.store import Gallery
from tests.fixture_site import random_image, sighting


@pytest.fixture
def gallery(crawled, tmp_path):
    """A copy of the shared crawled gallery: exports write their record into it."""
    copy = tmp_path / "gallery"
    shutil.copytree(crawled[1], copy)
    return Gallery(str(copy), create=False)


def _manifest(out) -> dict:
    return json.loads((out / "_manifest.json").read_text())


def test_parquet_rows_join_each_sighting_with_its_image(gallery, tmp_path):
    out = tmp_path / "pq"
    result = run_export(gallery, ExportOptions(format="parquet", out=str(out), shard_rows=3))
    manifest = _manifest(out)
    assert result.complete and manifest["complete"] and manifest["error"] is None
    sightings = gallery.sightings.count_rows()
    assert manifest["counts"]["rows"] == sightings > 3
    assert manifest["counts"]["images"] == gallery.images.count_rows()
    assert manifest["table_versions"] == {"images": gallery.images.version, "sightings": gallery.sightings.version}
    assert len(manifest["shards"]) == -(-sightings // 3)  # bounded: 3 rows a shard
    for shard in manifest["shards"]:
        data = (out / shard["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"] and len(data) == shard["bytes"]
    table = pq.read_table(out)
    assert "thumbnail" not in table.column_names
    stored = {r["image_id"]: r for r in gallery.images.to_arrow().to_pylist()}
    for row in table.to_pylist():
        image = stored[row["image_id"]]
        assert row["sha256"] == "sha256:" + row["image_id"]
        assert row["phash"] == format_hash("phash", bytes(image["phash"]))
        assert row["pdq"] == format_hash("pdq", bytes(image["pdq"]))
        assert (row["width"], row["height"], row["face_count"]) == (image["width"], image["height"], image["face_count"])
        assert row["policy"] and row["image_url"].startswith("http://127.0.0.1")


def test_webdataset_shards_hold_the_pixelated_thumbnail_and_the_fields(gallery, tmp_path):
    import webdataset as wds

    out = tmp_path / "wds"
    manifest = run_export(gallery, ExportOptions(format="webdataset", out=str(out), shard_rows=4)).manifest
    urls = [str(out / s["path"]) for s in manifest["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert len(samples) == manifest["counts"]["rows"] == gallery.sightings.count_rows()
    thumbnails = {r["image_id"]: r["thumbnail"] for r in gallery.images.to_arrow().to_pylist()}
    faces = 0
    for sample in samples:
        fields = json.loads(sample["json"])
        assert sample["__key__"] == fields["sighting_id"]
        # The stored thumbnail, byte for byte: faces were pixelated before it was stored.
        assert sample["jpg"] == thumbnails[fields["image_id"]]
        Image.open(io.BytesIO(sample["jpg"])).verify()
        faces += fields["face_count"] > 0
    assert faces  # the fixture site has pictures with faces


def test_jsonl_with_filters(gallery, tmp_path):
    rows = gallery.images.to_arrow().to_pylist()
    side = sorted(min(r["width"], r["height"]) for r in rows)[len(rows) // 2]
    out = tmp_path / "jsonl"
    manifest = run_export(gallery, ExportOptions(format="jsonl", out=str(out), filters=Filters(min_side=side))).manifest
    lines = [json.loads(line) for line in (out / "part-00000.jsonl").read_text().splitlines()]
    assert len(lines) == manifest["counts"]["rows"] > 0
    assert all(min(r["width"], r["height"]) >= side for r in lines)
    wide = {r["image_id"] for r in rows if min(r["width"], r["height"]) >= side}
    assert len(lines) == sum(1 for s in gallery.sightings.to_arrow().to_pylist() if s["image_id"] in wide)
    later = Filters(since=datetime.now(timezone.utc) + timedelta(days=1))
    empty = run_export(gallery, ExportOptions(format="jsonl", out=str(tmp_path / "none"), filters=later)).manifest
    assert empty["counts"]["rows"] == 0 and empty["shards"] == [] and empty["complete"]


def test_an_empty_gallery_exports_an_empty_manifest(tmp_path):
    out = tmp_path / "out"
    manifest = run_export(Gallery(str(tmp_path / "g")), ExportOptions(format="parquet", out=str(out))).manifest
    assert manifest["complete"] and manifest["counts"]["rows"] == 0
    assert [p.name for p in out.iterdir()] == ["_manifest.json"]


def test_an_existing_path_is_refused_unless_overwrite(gallery, tmp_path):
    out = tmp_path / "out"
    run_export(gallery, ExportOptions(format="jsonl", out=str(out)))
    with pytest.raises(ExportError, match="exists: pass --overwrite"):
        run_export(gallery, ExportOptions(format="jsonl", out=str(out)))
    again = run_export(gallery, ExportOptions(format="parquet", out=str(out), overwrite=True))
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "part-00000.parquet"]
    assert again.complete
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an export"):
        run_export(gallery, ExportOptions(format="jsonl", out=str(other), overwrite=True))
    assert (other / "notes.txt").exists()


class _DiskFull:
    """A file that takes `room` bytes and then fails as a full disk does."""

    def __init__(self, path, room: int):
        self.file, self.room = open(path, "wb"), room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)

    def flush(self):
        self.file.flush()

    def close(self):
        self.file.close()


def test_a_full_disk_leaves_only_whole_shards_and_says_so(gallery, tmp_path):
    out = tmp_path / "out"
    opened = []

    def open_file(path):
        opened.append(path)
        return _DiskFull(path, room=10**9 if len(opened) < 3 else 100)  # the third shard hits a full disk

    result = run_export(gallery, ExportOptions(format="jsonl", out=str(out), shard_rows=2), open_file=open_file)
    manifest = _manifest(out)
    assert not result.complete and not manifest["complete"]
    assert "part-00002.jsonl" in manifest["error"] and "No space left" in manifest["error"]
    assert [s["path"] for s in manifest["shards"]] == ["part-00000.jsonl", "part-00001.jsonl"]
    assert manifest["counts"]["rows"] == 4
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "part-00000.jsonl", "part-00001.jsonl"]


def test_an_export_reads_one_pinned_version(tmp_path):
    gallery = Gallery(str(tmp_path / "g"))
    writer = GalleryWriter(gallery)
    writer.add(random_image(), sighting("http://a.test/1.jpg"))
    writer.write(writer.take_batch())
    pinned = PinnedGallery.of(gallery)
    writer.add(random_image(), sighting("http://a.test/2.jpg"))  # committed after the export began
    writer.write(writer.take_batch())
    rows = ExportRows(pinned, filters=Filters(), with_thumbnails=False)
    assert sum(b.table.num_rows for b in rows) == 1
    assert gallery.sightings.count_rows() == 2


def test_hash_text_matches_format_hash():
    values = [bytes(range(i, i + 8)) for i in range(3)]
    column = pa.array([list(v) for v in values] + [None], pa.list_(pa.uint8(), 8))
    assert hash_text("phash", column.slice(1)).to_pylist() == [format_hash("phash", v) for v in values[1:]] + [None]


def test_a_removal_names_the_exports_that_held_its_rows(gallery, tmp_path):
    row = gallery.sightings.to_arrow().to_pylist()[0]
    first = run_export(gallery, ExportOptions(format="parquet", out=str(tmp_path / "a"))).manifest_path
    run_export(gallery, ExportOptions(format="jsonl", out=str(tmp_path / "b"), filters=Filters(domain="elsewhere.test")))
    [report] = process_requests(gallery, [build_request([("url", row["image_url"])], basis="copyright")])
    assert report.sightings_removed >= 1
    assert [(e["manifest"], e["sightings"] >= 1) for e in report.exports] == [(first, True)]
