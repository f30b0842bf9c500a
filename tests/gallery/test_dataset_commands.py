"""`gallery export` and `gallery report` through the real command line."""

import functools
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


def _limit_file_size(limit: int):
    # A file past `limit` bytes fails with EFBIG (SIGXFSZ ignored, so the write returns an error): a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_export_cli_on_a_full_disk_removes_the_partial_shard(gallery, tmp_path):
    args = ["export", "--format", "webdataset", "--shard-rows", "1", "--gallery", str(gallery)]
    whole = json.loads(run_gallery(*args, "--out", str(tmp_path / "whole"), "--json").stdout)["shards"]
    # The disk fills at the biggest one-row shard; rows come in storage order, which differs per crawl.
    limit = max(s["bytes"] for s in whole) - 1
    fit = next(i for i, s in enumerate(whole) if s["bytes"] > limit)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "gallery", *args, "--out", str(out)], capture_output=True, text=True, cwd=REPO,
        preexec_fn=functools.partial(_limit_file_size, limit), timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: export incomplete") and len(result.stderr.strip().splitlines()) == 1
    manifest = json.loads((out / "_manifest.json").read_text())
    assert not manifest["complete"] and "File too large" in manifest["error"]
    listed = [s["path"] for s in manifest["shards"]]
    on_disk = {p.name for p in out.iterdir()} - {"_manifest.json"}
    assert set(listed) == on_disk and listed == [s["path"] for s in whole[:fit]]


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


def test_the_rights_report_renders_in_chromium(gallery, tmp_path):
    """The report as a person sees it: real headless Chromium, no network, a screenshot kept."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import run_gallery_json

    import lance

    sightings = run_gallery_json("stats", "--gallery", str(gallery))["sightings"]
    url = lance.dataset(str(gallery / "sightings.lance")).to_table(columns=["image_url"])["image_url"][0].as_py()
    removed = run_gallery_json("remove", "--url", url, "--basis", "erasure", "--gallery", str(gallery))
    assert removed["rows_removed"] > 0
    data = run_gallery_json("report", "--gallery", str(gallery))
    assert data["removals"]["by_basis"] == [{"basis": "erasure", "requests": 1, "rows_removed": removed["rows_removed"]}]
    assert data["removals"]["erasure_deadlines"]["met"] == 1 and data["removals"]["purge_verified"] == 1
    assert data["totals"]["sightings"] == sightings - removed["sightings_removed"]
    robots = next(b for b in data["left_out"]["blocked"] if b["reason"] == "robots")
    assert any("/private/" in url for d in robots["domains"] for url in d["examples"])
    assert {s["reason"] for s in data["left_out"]["skipped"]} >= {"not_an_image", "too_many_pixels"}

    html = tmp_path / "report.html"
    run_gallery("report", "--out", str(html), "--gallery", str(gallery))
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/lib/chromium/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            requested = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(html.as_uri())
            assert requested == [html.as_uri()]  # self-contained: nothing else is fetched
            headings = page.locator("h2").all_inner_texts()
            assert headings == ["What was crawled", "What was left out, and why", "Removals", "Faces", "Licences"]
            assert any(t.startswith("blocked: robots (") for t in page.locator("h3.reason").all_inner_texts())
            assert page.get_by_text("/private/page.html").count() >= 1
            charts = page.locator("svg")
            assert charts.count() >= 4
            assert all(charts.nth(i).bounding_box()["width"] > 100 for i in range(charts.count()))
            assert page.locator("#removals ~ .cards").first.inner_text().split() [:2] == ["requests", "1"]
            page.screenshot(path=str(artifacts / "rights-report.png"), full_page=True)
        finally:
            browser.close()
