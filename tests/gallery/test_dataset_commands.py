"""`gallery export` and `gallery report` through the real command line."""

import json
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_gallery


@pytest.fixture
def gallery(crawled, tmp_path):
    copy = tmp_path / "gallery"
    shutil.copytree(crawled[1], copy)
    return copy


def test_export_cli_writes_a_manifest_and_refuses_an_existing_path(gallery, tmp_path):
    out = tmp_path / "out"
    result = run_gallery("export", "--format", "parquet", "--out", str(out), "--gallery", str(gallery), "--json")
    document = json.loads(result.stdout)
    assert document["complete"] and document["counts"]["rows"] > 0
    assert document["manifest_path"] == str(out / "_manifest.json")
    again = run_gallery("export", "--out", str(out), "--gallery", str(gallery), check=False)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip() == f"error: {out} exists: pass --overwrite to replace it"
    bad = run_gallery("export", "--since", "yesterday", "--out", str(tmp_path / "x"), "--gallery", str(gallery), check=False)
    assert bad.returncode == 1 and "--since wants a date" in bad.stderr


def _limit_file_size():
    # A file past 40 kB fails with EFBIG (SIGXFSZ ignored, so the write returns an error): a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))


def test_export_cli_on_a_full_disk_removes_the_partial_shard(gallery, tmp_path):
    out = tmp_path / "out"
    args = ["export", "--format", "webdataset", "--shard-rows", "1", "--out", str(out), "--gallery", str(gallery)]
    result = subprocess.run(
        [sys.executable, "-m", "gallery", *args], capture_output=True, text=True, cwd=REPO, preexec_fn=_limit_file_size, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: export incomplete") and len(result.stderr.strip().splitlines()) == 1
    manifest = json.loads((out / "_manifest.json").read_text())
    assert not manifest["complete"] and "File too large" in manifest["error"]
    listed = {s["path"] for s in manifest["shards"]}
    on_disk = {p.name for p in out.iterdir()} - {"_manifest.json"}
    assert listed == on_disk and listed and all(s["bytes"] <= 40_000 for s in manifest["shards"])


def test_duckdb_reads_the_gallery_tables_with_the_counts_stats_gives(crawled):
    import duckdb
    import lance

    from indexer.hashes import format_hash
    from tests.conftest import run_gallery_json

    gallery = crawled[1]
    stats = run_gallery_json("stats", "--gallery", str(gallery))
    # As the README shows: a Lance dataset is an Arrow dataset, which DuckDB scans by name.
    images = lance.dataset(str(gallery / "images.lance"))
    sightings = lance.dataset(str(gallery / "sightings.lance"))  # noqa: F841
    con = duckdb.connect()
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == stats["images"]
    assert con.execute("SELECT count(*) FROM sightings").fetchone()[0] == stats["sightings"]
    joined = con.execute("SELECT count(*) FROM sightings s JOIN images i USING (image_id)").fetchone()[0]
    assert joined == stats["sightings"]
    # The README's KIND:HEX in SQL gives what the command line prints.
    hex_sql = "'phash:' || list_aggregate(list_transform(phash, lambda b: lpad(lower(hex(b)), 2, '0')), 'string_agg', '')"
    in_sql = con.execute(f"SELECT image_id, {hex_sql} FROM images").fetchall()
    by_lance = images.to_table(columns=["image_id", "phash"]).to_pylist()
    assert dict(in_sql) == {r["image_id"]: format_hash("phash", bytes(r["phash"])) for r in by_lance}
