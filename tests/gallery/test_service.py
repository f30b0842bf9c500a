"""The HTTP service over real HTTP (uvicorn on 127.0.0.1, port 0) and a real crawled gallery."""

import io
import shutil
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from gallery.service import ServiceConfig, create_app
from indexer.analyze import query_hashes
from indexer.decode import decode_bounded
from indexer.faces import FaceDetector
from indexer.store import Gallery
from tests.fixture_site import png_bomb

STEWARD_KEY = "steward-secret-key"
SEARCH_KEY = "search-key"


class ServiceThread:
    """uvicorn serving an app from a background thread on a port chosen by the OS."""

    def __init__(self, app):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.socket.getsockname()[1]

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "service did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(crawled, tmp_path_factory):
    """A copy of the crawled fixture gallery behind the service: (client, gallery path)."""
    gallery = tmp_path_factory.mktemp("served") / "gallery"
    shutil.copytree(crawled[1], gallery)
    app = create_app(ServiceConfig(gallery_uri=str(gallery), steward_keys=frozenset({STEWARD_KEY}), max_upload_bytes=2_000_000))
    with ServiceThread(app) as service, httpx.Client(base_url=service.url, timeout=30) as client:
        yield client, gallery


def _jpeg(path, size=None, quality=70) -> bytes:
    img = Image.open(path).convert("RGB")
    if size:
        img = img.resize(size)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_search_by_hash_of_each_kind(served, fixture_site):
    client, _ = served
    original = (fixture_site.root / "img" / "src.jpg").read_bytes()
    sha256, hashes = query_hashes(original)
    for query in (f"sha256:{sha256}", f"pdq:{hashes.pdq.hex()}", f"phash:{hashes.phash.hex()}"):
        response = client.get("/search", params={"hash": query})
        assert response.status_code == 200, response.text
        best = response.json()["matches"][0]
        assert best["image"]["image_id"] == sha256 and best["distance"] == 0
        sighting = best["sightings"][0]
        assert sighting["page_url"] == f"{fixture_site.url}/forms.html"
        assert sighting["license_url"] == "https://creativecommons.org/licenses/by/4.0/"
        assert {"first_seen", "last_seen"} <= best["image"].keys()


def test_search_by_upload_finds_a_resized_copy(served, fixture_site):
    client, _ = served
    copy = _jpeg(fixture_site.root / "img" / "src.jpg", size=(240, 180), quality=50)
    response = client.post("/search", files={"image": ("copy.jpg", copy, "image/jpeg")})
    assert response.status_code == 200, response.text
    best = response.json()["matches"][0]
    assert best["sightings"][0]["image_url"] == f"{fixture_site.url}/img/src.jpg"
    assert best["kind"] == "pdq" and best["distance"] <= 31


def test_pagination_best_match_first(served):
    client, _ = served
    everything = client.get("/search", params={"hash": "phash:" + "00" * 8, "max_distance": 64, "per_page": 100}).json()
    assert everything["total"] >= 10
    distances = [m["distance"] for m in everything["matches"]]
    assert distances == sorted(distances)
    second = client.get("/search", params={"hash": "phash:" + "00" * 8, "max_distance": 64, "per_page": 3, "page": 2}).json()
    assert [m["image"]["image_id"] for m in second["matches"]] == [m["image"]["image_id"] for m in everything["matches"][3:6]]


def test_image_metadata_and_face_blurred_thumbnail(served, fixture_site):
    client, gallery = served
    rows = Gallery(str(gallery), create=False).sightings.to_arrow().to_pylist()
    image_id = next(r["image_id"] for r in rows if r["image_url"].endswith("astronaut.jpg"))
    meta = client.get(f"/images/{image_id}").json()
    assert meta["image"]["face_count"] >= 1 and meta["sightings"]
    thumbnail = client.get(f"/images/{image_id.upper()}/thumbnail")
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert FaceDetector().detect(decode_bounded(thumbnail.content).image) == []


def test_stats_and_openapi(served):
    client, gallery = served
    assert client.get("/stats").json() == Gallery(str(gallery), create=False).counts()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/images/{image_id}", "/images/{image_id}/thumbnail", "/stats"} <= paths.keys()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("get", "/search", {"params": {"hash": "ab" * 32}}, 400),
        ("get", "/search", {"params": {"hash": "pdq:xyz"}}, 400),
        ("get", "/search", {}, 422),
        ("get", "/search", {"params": {"hash": "phash:" + "00" * 8, "max_distance": -1}}, 422),
        ("get", "/images/" + "00" * 32, {}, 404),
        ("get", "/images/not-an-id/thumbnail", {}, 404),
        ("post", "/search", {"files": {"image": ("a.jpg", b"<html>nope</html>", "image/jpeg")}}, 422),
        ("post", "/search", {"files": {"image": ("bomb.png", png_bomb(), "image/png")}}, 422),
        ("post", "/search", {"files": {"image": ("big.jpg", b"\xff" * 2_000_001, "image/jpeg")}}, 413),
        ("post", "/search", {"data": {"nothing": "here"}}, 422),
        ("post", "/search", {"content": b"\x00\x01", "headers": {"content-type": "multipart/form-data; boundary=x"}}, 400),
    ],
)
def test_bad_input_is_a_json_4xx(served, method, path, kwargs, status):
    client, _ = served
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=4096), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a"])))
def test_upload_fuzz_never_500(served, data):
    client, _ = served
    response = client.post("/search", files={"image": ("fuzz", data, "application/octet-stream")})
    assert response.status_code in (200, 413, 422), response.text


def test_read_only_endpoints_never_write(served, fixture_site):
    client, gallery = served
    store = Gallery(str(gallery), create=False)
    before = {name: store.db.open_table(name).version for name in ("images", "sightings")}
    sha256, _ = query_hashes((fixture_site.root / "img" / "src.jpg").read_bytes())
    client.get("/search", params={"hash": f"sha256:{sha256}"})
    client.post("/search", files={"image": ("a.jpg", (fixture_site.root / "img" / "src.jpg").read_bytes(), "image/jpeg")})
    client.get(f"/images/{sha256}")
    client.get("/stats")
    assert {name: store.db.open_table(name).version for name in ("images", "sightings")} == before


def test_search_key_required_when_configured(crawled):
    app = create_app(ServiceConfig(gallery_uri=str(crawled[1]), steward_keys=frozenset({STEWARD_KEY}), search_keys=frozenset({SEARCH_KEY})))
    with ServiceThread(app) as service, httpx.Client(base_url=service.url) as client:
        assert client.get("/stats").status_code == 401
        assert client.get("/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/stats", headers={"Authorization": f"Bearer {SEARCH_KEY}"}).status_code == 200
        # A steward key is not a search key.
        assert client.get("/stats", headers={"Authorization": f"Bearer {STEWARD_KEY}"}).status_code == 401


@pytest.fixture
def steward_service(crawled, tmp_path):
    """A fresh copy of the crawled gallery for tests that remove rows: (client, gallery, url)."""
    gallery = tmp_path / "gallery"
    shutil.copytree(crawled[1], gallery)
    app = create_app(ServiceConfig(gallery_uri=str(gallery), steward_keys=frozenset({STEWARD_KEY})))
    with ServiceThread(app) as service, httpx.Client(base_url=service.url, timeout=60) as client:
        yield client, gallery, service.url


STEWARD = {"Authorization": f"Bearer {STEWARD_KEY}"}


def test_removal_over_http(steward_service, fixture_site):
    client, gallery, _ = steward_service
    sha256, _ = query_hashes((fixture_site.root / "img" / "src.jpg").read_bytes())
    assert client.get("/search", params={"hash": f"sha256:{sha256}"}).json()["total"] == 1
    body = {"hash": f"sha256:{sha256}", "basis": "copyright", "requester": "Rights Owner", "reference": "T-1",
            "notice": {"work": "photo", "signature": "R.O."}}
    response = client.post("/removals", json=body, headers=STEWARD)
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["rows_removed"] >= 2 and report["purged"] is True
    # Gone from search at once, without a restart, and listed with its record.
    assert client.get("/search", params={"hash": f"sha256:{sha256}"}).json()["total"] == 0
    assert client.get(f"/images/{sha256}").status_code == 404
    listed = client.get("/removals", headers=STEWARD).json()["removals"]
    assert [r["requester"] for r in listed] == ["Rights Owner"]
    one = client.get(f"/removals/{report['request_id']}", headers=STEWARD).json()
    assert one["basis"] == "copyright" and one["reference"] == "T-1"


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, {"domain": "example.org"}, 401),
        ({"Authorization": "Bearer wrong"}, {"domain": "example.org"}, 401),
        ({"Authorization": STEWARD_KEY}, {"domain": "example.org"}, 401),  # no "Bearer"
        (STEWARD, {}, 400),
        (STEWARD, {"hash": "ab" * 32}, 400),  # bare hex is ambiguous
        (STEWARD, {"hash": "pdq:12"}, 400),
        (STEWARD, {"domain": "example.org", "basis": "because"}, 400),
        (STEWARD, {"colour": "red"}, 422),
        (STEWARD, {"domain": "127.0.0.1"}, 409),  # would remove everything: refused without yes_all
    ],
)
def test_bad_removal_requests(steward_service, headers, body, status):
    client, _, _ = steward_service
    response = client.post("/removals", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_removal_lists_need_a_steward_key(steward_service):
    client, _, _ = steward_service
    assert client.get("/removals").status_code == 401
    assert client.get("/removals/nope", headers=STEWARD).status_code == 404


def test_web_page_search_then_remove(steward_service, fixture_site, tmp_path):
    """A person's path, in real headless Chromium: upload, see the match, file a removal, see it gone."""
    from playwright.sync_api import expect, sync_playwright

    _, _, url = steward_service
    upload = tmp_path / "copy.jpg"
    upload.write_bytes(_jpeg(fixture_site.root / "img" / "og.jpg", size=(320, 240), quality=60))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/lib/chromium/chromium",
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update"],
        )
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.set_input_files("#file", str(upload))
            match = page.locator(".match").first
            expect(match).to_contain_text("og.jpg", timeout=20_000)
            expect(match.locator("a").first).to_have_attribute("href", f"{fixture_site.url}/forms.html")
            expect(match.locator("img")).to_have_js_property("complete", True)
            assert match.locator("img").evaluate("img => img.naturalWidth") > 0  # the thumbnail loaded
            page.fill("#key", STEWARD_KEY)
            match.locator("select[name=basis]").select_option("copyright")
            match.locator("input[name=requester]").fill("Photographer")
            match.locator("button").click()
            expect(page.locator("#status")).to_contain_text("row(s) removed", timeout=60_000)
            expect(page.locator(".match")).to_have_count(0)
        finally:
            browser.close()
