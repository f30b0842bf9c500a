"""The fixture server's validators: ETag and Last-Modified, and the 304s they earn."""

import os
import urllib.error
import urllib.request

import pytest

from gallery.site import StaticSite


@pytest.fixture
def site(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "index.html").write_text("<html></html>")
    with StaticSite(tmp_path) as site:
        yield site


def get(url: str, **headers) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:  # urllib raises on a 304
        return error.code, dict(error.headers)


def test_files_carry_both_validators(site):
    status, headers = get(site.url + "/a.txt")
    assert status == 200 and headers["ETag"].startswith('"') and "Last-Modified" in headers
    _, index = get(site.url + "/")
    assert index["ETag"] != headers["ETag"]


def test_if_none_match_is_answered_first(site):
    _, headers = get(site.url + "/a.txt")
    etag, last_modified = headers["ETag"], headers["Last-Modified"]
    assert get(site.url + "/a.txt", **{"If-None-Match": etag})[0] == 304
    assert get(site.url + "/a.txt", **{"If-None-Match": f'"other", W/{etag}'})[0] == 304
    assert get(site.url + "/a.txt", **{"If-Modified-Since": last_modified})[0] == 304
    # A non-matching ETag wins over a matching date (RFC 9110 §13.2.2).
    assert get(site.url + "/a.txt", **{"If-None-Match": '"other"', "If-Modified-Since": last_modified})[0] == 200
    assert site.answers[-1].if_none_match == '"other"' and site.answers[-1].status == 200


def test_a_rewritten_file_gets_a_new_etag(site):
    _, before = get(site.url + "/a.txt")
    (site.root / "a.txt").write_text("two")
    os.utime(site.root / "a.txt", ns=(0, os.stat(site.root / "a.txt").st_mtime_ns + 10**9))
    status, after = get(site.url + "/a.txt", **{"If-None-Match": before["ETag"]})
    assert status == 200 and after["ETag"] != before["ETag"]
    assert [a.status for a in site.answers] == [200, 200]
    assert site.requests == ["/a.txt", "/a.txt"]
