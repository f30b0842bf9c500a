"""The HTTP service over real HTTP (uvicorn on 127.0.0.1, port 0) and a real crawled gallery."""

import io
from pathlib import Path
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from gallery.service import ServiceConfig, create_app
from indexer.analyze import query_hashes
from indexer.decode import DecodeLimits, decode_bounded
from indexer.faces import FaceDetector
from indexer.ingest import GalleryWriter
from indexer.store import Gallery
from indexer.workers import WorkerBounds
from tests.fixture_site import png_bomb, random_image, scan_bomb, sighting

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
    assert best["hash"] == "pdq" and best["distance"] <= 31 and best["kind"] == "resized"
    assert response.json()["note"] is None


def test_a_blank_upload_is_answered_with_a_note(served):
    client, _ = served
    blank = io.BytesIO()
    Image.new("RGB", (320, 240), "white").save(blank, "PNG")
    body = client.post("/search", files={"image": ("blank.png", blank.getvalue(), "image/png")}).json()
    assert body["total"] == 0 and "flat or near-blank" in body["note"]


def test_search_by_upload_finds_a_crop_and_says_which_part(served, fixture_site):
    client, _ = served
    original = Image.open(fixture_site.root / "img" / "src.jpg").convert("RGB")
    w, h = original.size
    crop = original.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=85)
    response = client.post("/search", files={"image": ("crop.jpg", buffer.getvalue(), "image/jpeg")})
    assert response.status_code == 200, response.text
    best = response.json()["matches"][0]
    assert best["sightings"][0]["image_url"] == f"{fixture_site.url}/img/src.jpg"
    assert (best["kind"], best["region"], best["stored_region"]) == ("contains", [0.0, 0.0, 1.0, 1.0], "centre_80")
    assert best["label"].startswith("contains your picture") and "regions" not in best["image"]


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
    assert " object at 0x" not in response.json()["error"]  # no Python reprs in what people read


def test_a_non_image_upload_is_named_plainly(served):
    client, _ = served
    response = client.post("/search", files={"image": ("a.jpg", b"<html>nope</html>", "image/jpeg")})
    assert response.json()["error"] == "not a usable image (not_an_image: not a recognised image format)"


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
    # A repost with a caption bar under the picture: matched on its upper part, drawn on the query.
    original = Image.open(fixture_site.root / "img" / "og.jpg").convert("RGB")
    captioned = Image.new("RGB", (original.width, original.height * 7 // 6), "white")
    captioned.paste(original, (0, 0))
    captioned.save(tmp_path / "captioned.jpg", quality=85)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/lib/chromium/chromium",
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update"],
        )
        try:
            page = browser.new_page()
            page.goto(url + "/")
            artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            page.set_input_files("#file", str(tmp_path / "captioned.jpg"))
            part = page.locator(".match").first
            expect(part.locator(".how")).to_contain_text("A crop of your picture", timeout=20_000)
            box = part.locator(".part .box").bounding_box()
            drawn = part.locator(".part img").bounding_box()
            assert abs(box["width"] - drawn["width"]) <= 2 and 0.8 <= box["height"] / drawn["height"] <= 0.9
            page.screenshot(path=str(artifacts / "search-page-part.png"), full_page=True)
            page.set_input_files("#file", str(upload))
            match = page.locator(".match").first
            expect(match).to_contain_text("og.jpg", timeout=20_000)
            expect(match.locator(".how")).to_have_text("Same picture, resized or recompressed")
            expect(page.locator("#query-image")).to_have_js_property("complete", True)
            assert page.locator("#query-image").evaluate("img => img.naturalWidth") == 320  # the query, beside the results
            expect(match.locator("details.site")).to_contain_text("127.0.0.1: 1 page(s)")
            expect(match.locator("a").first).to_have_attribute("href", f"{fixture_site.url}/forms.html")
            page.screenshot(path=str(artifacts / "search-page.png"), full_page=True)
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


# --- hostile requests: refused on their headers, decoded off the event loop -------------------


@pytest.fixture(scope="module")
def keyed(crawled):
    """The crawled gallery behind a service with search and steward keys and small limits: its URL."""
    config = ServiceConfig(
        gallery_uri=str(crawled[1]),
        steward_keys=frozenset({STEWARD_KEY}),
        search_keys=frozenset({SEARCH_KEY}),
        max_upload_bytes=1_000_000,
        max_removal_bytes=10_000,
    )
    with ServiceThread(create_app(config)) as service:
        yield service.url


def _headers_only(url: str, path: str, *, length: int, key: str | None = None) -> tuple[int, float]:
    """POST with a declared body that never comes: (status, seconds until the answer)."""
    port = int(url.rsplit(":", 1)[1])
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
    head += f"Authorization: Bearer {key}\r\n" if key else ""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall((head + "\r\n").encode())
        status_line = conn.makefile("rb").readline()
    return int(status_line.split()[1]), time.monotonic() - started


@pytest.mark.parametrize(
    ("path", "key", "status"),
    [("/search", None, 401), ("/search", SEARCH_KEY, 413), ("/removals", None, 401), ("/removals", SEARCH_KEY, 401),
     ("/removals", STEWARD_KEY, 413)],
)
def test_declared_300mb_body_answered_on_headers_alone(keyed, path, key, status):
    answered, seconds = _headers_only(keyed, path, length=300_000_000, key=key)
    assert answered == status
    assert seconds < 1


def test_streamed_body_over_the_limit_is_cut_at_the_limit(keyed):
    sent = 0

    def chunks():  # no Content-Length: chunked, as a client streaming a body would send it
        nonlocal sent
        for _ in range(1000):
            sent += 1000
            yield b"x" * 1000

    with httpx.Client(base_url=keyed, timeout=10) as client:
        response = client.post("/removals", content=chunks(), headers={"Authorization": f"Bearer {STEWARD_KEY}"})
    assert response.status_code == 413 and "10000 bytes" in response.json()["error"]


def test_multipart_parts_are_bounded(keyed):
    files = [("image", (f"{i}.jpg", b"\xff" * 1000, "image/jpeg")) for i in range(20)]
    with httpx.Client(base_url=keyed, timeout=10) as client:
        response = client.post("/search", files=files, headers={"Authorization": f"Bearer {SEARCH_KEY}"})
    assert response.status_code == 400, response.text
    assert "files" in response.json()["error"]


def test_scan_bomb_upload_refused_within_a_second(keyed):
    with httpx.Client(base_url=keyed, timeout=10) as client:
        started = time.monotonic()
        response = client.post("/search", files={"image": ("bomb.jpg", scan_bomb(2000), "image/jpeg")},
                               headers={"Authorization": f"Bearer {SEARCH_KEY}"})
    assert response.status_code == 422 and "too many scans: 2010" in response.json()["error"]
    assert time.monotonic() - started < 1


def test_stats_answers_while_four_costly_uploads_decode(tmp_path):
    """Decoding runs in worker processes: a burst of uploads that each cost many seconds (the scan
    limit lifted here, so they reach the decoder) never holds up the event loop; past the queue
    limit an upload is told to come back later; a decode past its wall time is cut off."""
    Gallery(str(tmp_path / "g"))
    config = ServiceConfig(
        gallery_uri=str(tmp_path / "g"),
        steward_keys=frozenset({STEWARD_KEY}),
        decode_limits=DecodeLimits(max_scans=1_000_000, max_scan_pixels=10**15),
        upload_workers=2,
        upload_queue=2,
        upload_bounds=WorkerBounds(seconds=2, memory_bytes=1024**3),
    )
    bomb = scan_bomb(4000)
    with ServiceThread(create_app(config)) as service, httpx.Client(base_url=service.url, timeout=120) as client:
        with ThreadPoolExecutor(4) as uploads:
            answers = [uploads.submit(client.post, "/search", files={"image": ("b.jpg", bomb, "image/jpeg")}) for _ in range(4)]
            time.sleep(0.5)
            extra = client.post("/search", files={"image": ("b.jpg", bomb, "image/jpeg")})
            stats_seconds = []
            while not all(a.done() for a in answers):
                started = time.monotonic()
                assert client.get("/stats").status_code == 200
                stats_seconds.append(time.monotonic() - started)
                time.sleep(0.2)
            results = [a.result() for a in answers]
    assert extra.status_code == 503 and extra.headers["Retry-After"] == "2"
    assert [r.status_code for r in results] == [422] * 4
    assert all("decode_timeout" in r.json()["error"] for r in results), [r.json() for r in results]
    assert len(stats_seconds) >= 3 and max(stats_seconds) < 1, stats_seconds


def test_concurrent_removals_cannot_both_pass_the_every_row_guard(tmp_path):
    """Two requests, each matching half the gallery, filed at the same moment: one at a time, so
    the second sees only its own half left, which is every row, and is refused."""
    gallery = tmp_path / "gallery"
    writer = GalleryWriter(Gallery(str(gallery)))
    for host in ("a.test", "b.test"):
        for i in range(3):
            writer.add(random_image(), sighting(f"http://{host}/{i}.jpg", f"http://{host}/"))
    writer.write(writer.take_batch())
    app = create_app(ServiceConfig(gallery_uri=str(gallery), steward_keys=frozenset({STEWARD_KEY})))
    with ServiceThread(app) as service, httpx.Client(base_url=service.url, timeout=120) as client:
        start = threading.Barrier(2)

        def remove(domain):
            start.wait()
            return client.post("/removals", json={"domain": domain}, headers=STEWARD)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(remove, ["a.test", "b.test"]))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert "every row" in next(a for a in answers if a.status_code == 409).json()["error"]
    assert len(Gallery(str(gallery), create=False).sightings.to_arrow()) == 3


def test_public_suffix_domain_refused_over_http(steward_service):
    client, _, _ = steward_service
    response = client.post("/removals", json={"domain": "github.io"}, headers=STEWARD)
    assert response.status_code == 400 and "public suffix" in response.json()["error"]


def test_web_page_asks_for_a_search_key_once_per_tab(keyed, fixture_site, tmp_path):
    """With search keys on, the page asks once, keeps the key for the tab and sends it."""
    from playwright.sync_api import expect, sync_playwright

    upload = tmp_path / "copy.jpg"
    upload.write_bytes(_jpeg(fixture_site.root / "img" / "og.jpg", size=(320, 240), quality=60))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/lib/chromium/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(keyed + "/")
            expect(page.locator("#search-key-box")).to_be_hidden()
            page.set_input_files("#file", str(upload))
            expect(page.locator("#search-key-box")).to_be_visible()
            page.fill("#search-key", "wrong-key")
            page.click("#search-key-box button")
            expect(page.locator("#status")).to_contain_text("not accepted")
            page.fill("#search-key", SEARCH_KEY)
            page.click("#search-key-box button")
            match = page.locator(".match").first
            expect(match).to_contain_text("og.jpg", timeout=20_000)
            expect(match.locator("img")).to_have_js_property("complete", True)
            page.wait_for_function("document.querySelector('.match img').naturalWidth > 0")  # thumbnail fetched with the key
            assert page.evaluate("sessionStorage.getItem('gallery-search-key')") == SEARCH_KEY
            page.set_input_files("#file", str(fixture_site.root / "img" / "src.jpg"))  # a second search: no question
            expect(page.locator("#status")).to_contain_text("match(es)", timeout=20_000)
            expect(page.locator("#search-key-box")).to_be_hidden()
        finally:
            browser.close()
