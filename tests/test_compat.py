"""Every seam of crawler/compat.py and indexer/compat.py, against the installed libraries. A
failure here after an upgrade names the library and what moved: follow it in the compat module
(nothing else reaches those names)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import lancedb
import pyarrow as pa
import pytest

from indexer import compat

REPO = Path(__file__).resolve().parent.parent

# A crawl of two data: URLs (no network), whose callback walks every Scrapy seam while the
# engine is running. In a fresh process: Twisted's reactor starts once per process.
_SCRAPY_PROBE = textwrap.dedent(
    """
    import json
    import scrapy
    from scrapy.crawler import CrawlerProcess
    from crawler import compat

    found = {}

    class Probe(scrapy.Spider):
        name = "probe"
        start_urls = ["data:,first"]

        def parse(self, response):
            try:
                yield from self.probe(response)
            except compat.IncompatibleDependency as exc:
                found["moved"] = str(exc)

        def probe(self, response):
            crawler = self.crawler
            if response.url.endswith("second"):
                found["second_parsed"] = True
                return
            found["in_progress"] = response.request in compat.requests_in_progress(crawler.engine)
            compat.schedule_next_look(crawler.engine, 0.0)
            key = compat.download_slot(crawler, response.request)
            found["delay_before"] = compat.slot_delay(crawler, key)
            compat.set_slot_delay(crawler, key, 0.25)
            found["delay_after"] = compat.slot_delay(crawler, key)
            found["live_slot_delay"] = crawler.engine.downloader.slots[key].delay
            found["pending_before"] = compat.pending_requests(crawler)
            yield scrapy.Request("data:,second", dont_filter=True)

        def closed(self, reason):
            found["after_close"] = sorted(compat.requests_in_progress(None))
            found["pending_closed"] = compat.pending_requests(self.crawler)

    process = CrawlerProcess({"LOG_LEVEL": "ERROR", "TELNETCONSOLE_ENABLED": False})
    process.crawl(Probe)
    process.start()
    print(json.dumps(found))
    """
)


def test_scrapy_engine_and_downloader_seams():
    run = subprocess.run([sys.executable, "-c", _SCRAPY_PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    last = (run.stderr.strip().splitlines() or [""])[-1]
    assert run.returncode == 0 and run.stdout.strip(), f"a Scrapy seam of crawler/compat.py moved: {last}"
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert "moved" not in found, found.get("moved")
    assert found["in_progress"], "ExecutionEngine._slot.inprogress no longer holds the request being parsed"
    assert (found["delay_before"], found["delay_after"]) == (0.0, 0.25), "Downloader.per_slot_settings moved"
    assert found["live_slot_delay"] == 0.25, "Downloader.slots[key].delay is no longer what spaces a slot"
    assert found.get("second_parsed") and found["after_close"] == []
    # Nothing queued while the only request is parsed (it has left the downloader); a number, not None.
    assert found["pending_before"] == 0, "ExecutionEngine.scheduler, Scheduler.__len__ or Downloader.active moved"
    assert found["pending_closed"] in (0, None)


@pytest.fixture
def lance_table(tmp_path):
    db = lancedb.connect(tmp_path / "db")
    return db.create_table("t", pa.table({"url": ["http://a/1", "http://a/2", "http://a/3"], "n": [1, 2, 3]}))


def test_lance_row_ids_select_and_delete_rows(lance_table):
    rows = compat.rows_with_ids(lance_table.to_lance(), ["url"])
    assert rows.column_names == ["url", compat.ROW_ID], f"Lance's {compat.ROW_ID} column moved"
    doomed = rows.filter(pa.compute.equal(rows["url"], "http://a/2"))[compat.ROW_ID].to_pylist()
    compat.delete_rows(lance_table, doomed)
    compat.delete_rows(lance_table, [])  # nothing to delete: no predicate at all
    assert sorted(lance_table.to_arrow()["url"].to_pylist()) == ["http://a/1", "http://a/3"]


def test_lance_data_files_are_read_one_by_one(lance_table, tmp_path):
    files = sorted((tmp_path / "db" / "t.lance" / "data").glob("*.lance"))
    assert files, "Lance no longer keeps a table's data files under <table>.lance/data/"
    uri = str(files[0])
    assert compat.data_file_columns(uri, storage_options=None) == ["url", "n"]
    assert compat.read_data_file(uri, storage_options=None, columns=["url"]).to_pydict() == {
        "url": ["http://a/1", "http://a/2", "http://a/3"]
    }
    assert compat.read_data_file(uri, storage_options=None).column_names == ["url", "n"]


def test_a_moved_seam_fails_in_one_line_naming_the_library(monkeypatch):
    monkeypatch.setattr(compat, "LanceFileReader", None)
    monkeypatch.setattr(compat, "_IMPORT_ERROR", ImportError("cannot import name 'LanceFileReader'"))
    with pytest.raises(compat.IncompatibleDependency, match=r"^pylance [\d.]+: lance.file.LanceFileReader has changed .*indexer/compat.py must follow it$"):
        compat.read_data_file("x.lance", storage_options=None)


_REST_CLIENT_PROBE = textwrap.dedent(
    """
    import json, sys, tempfile
    from indexer import compat
    from indexer.store import Gallery

    gallery = Gallery(tempfile.mkdtemp() + "/g")  # every table created and opened
    counts = gallery.counts()
    endpoints = sorted(m for m in sys.modules if m.startswith(compat.LANCE_REST_CLIENT + ".api"))
    import lance_namespace_urllib3_client as client  # asked for a name: the real package now
    print(json.dumps({"counts": counts, "endpoints_loaded": endpoints, "client": client.ApiClient.__name__}))
    """
)


def test_lancedbs_rest_client_is_loaded_only_when_asked_for():
    run = subprocess.run([sys.executable, "-c", _REST_CLIENT_PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["counts"]["images"] == 0
    # If this fails after an upgrade, LanceDB asks the REST client package for a name while it
    # imports: nothing breaks, but its start-up cost is back (benchmarks/startup.py shows how much).
    assert found["endpoints_loaded"] == [], "defer_lance_rest_client no longer defers LanceDB's REST client"
    assert found["client"] == "ApiClient"
