"""ai.txt, TDMRep, XMP and the SitePolicy that combines the site files."""

import json

import pytest

from robots_policy.aitxt import AiTxt
from robots_policy.cache import CachedFetch
from robots_policy.site import SitePolicy
from robots_policy.tdmrep import TdmRep
from robots_policy.xmp import check_xmp

TOKEN = "gallery-crawler"


@pytest.mark.parametrize(
    ("body", "url", "allowed"),
    [
        ("User-Agent: *\nDisallow: *.jpg\n", "http://a.test/x/photo.jpg", False),
        ("User-Agent: *\nDisallow: *.jpg\n", "http://a.test/x/photo.png", True),
        ("User-Agent: *\nDisallow: /\n", "http://a.test/x.png", False),
        ("User-Agent: *\nDisallow: photos/\n", "http://a.test/photos/1.png", False),
        ("User-Agent: otherbot\nDisallow: /\n", "http://a.test/x.png", True),
        ("", "http://a.test/x.png", True),
    ],
)
def test_ai_txt(body, url, allowed):
    assert AiTxt.from_fetch(status=200, body=body.encode()).decide(url, TOKEN).allowed is allowed


@pytest.mark.parametrize("status", [None, 404, 500])
def test_missing_ai_txt_reserves_nothing(status):
    assert AiTxt.from_fetch(status=status, body=b"").decide("http://a.test/x.jpg", TOKEN).allowed


TDM = json.dumps(
    [
        {"location": "/open/*", "tdm-reservation": 0},
        {"location": "/photos/*.jpg$", "tdm-reservation": 1, "tdm-policy": "https://a.test/policy.json"},
        {"location": "/photos/", "tdm-reservation": 0},
        {"location": "/", "tdm-reservation": 1},
    ]
).encode()


@pytest.mark.parametrize(
    ("url", "allowed", "reason"),
    [
        ("http://a.test/open/a.jpg", True, "tdmrep:allow(/open/*)"),
        ("http://a.test/photos/a.jpg", False, "tdmrep_reservation"),
        ("http://a.test/photos/a.jpg?size=2", True, "tdmrep:allow(/photos/)"),  # "$" anchors
        ("http://a.test/photos/a.png", True, "tdmrep:allow(/photos/)"),
        ("http://a.test/elsewhere", False, "tdmrep_reservation"),  # first match wins, then "/"
    ],
)
def test_tdmrep_first_match_wins(url, allowed, reason):
    decision = TdmRep.parse(TDM).decide(url)
    assert (decision.allowed, decision.reason) == (allowed, reason)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"location": "/"}', b"\xff\xfe\x00garbage", b"[" + b'{"location": "/x"},' * 100_000 + b"{}]", b"[1, 2, null]"],
    ids=["malformed", "object", "binary", "huge", "junk-entries"],
)
def test_bad_tdmrep_reserves_nothing(body):
    assert TdmRep.parse(body).decide("http://a.test/x").allowed


XMP_PROHIBITED = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"
 plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"/></rdf:RDF></x:xmpmeta>"""


@pytest.mark.parametrize(
    ("xmp", "allowed"),
    [
        (XMP_PROHIBITED, False),
        (b"<plus:DataMining>http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED</plus:DataMining>", False),
        (b'<plus:DataMining rdf:resource="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-GENAIMLTRAINING"/>', False),
        (b'plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"', True),
        (b'plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-UNSPECIFIED"', True),
        (b"", True),
    ],
)
def test_xmp_data_mining(xmp, allowed):
    assert check_xmp(xmp).allowed is allowed


def _fetched(status: int, body: bytes = b"") -> CachedFetch:
    return CachedFetch(status=status, body=body, fetched_at=0.0)


def _site(robots: str = "", ai: str | None = None, tdm: bytes | None = None) -> SitePolicy:
    return SitePolicy.from_fetches(
        robots=_fetched(200, robots.encode()),
        ai_txt=_fetched(200, ai.encode()) if ai is not None else _fetched(404),
        tdmrep=_fetched(200, tdm) if tdm is not None else _fetched(404),
    )


def test_site_policy_before_request_stops_at_first_block():
    site = _site("User-agent: *\nDisallow: /private/\n", ai="User-Agent: *\nDisallow: *.png\n")
    assert [d.reason for d in site.before_request("http://a.test/private/x.png", TOKEN)] == ["robots"]
    reasons = [d.reason for d in site.before_request("http://a.test/x.png", TOKEN)]
    assert reasons[-1] == "aitxt" and len(reasons) == 3
    assert all(d.allowed for d in site.before_request("http://a.test/x.jpg", TOKEN))


@pytest.mark.parametrize(
    ("headers", "meta", "reason"),
    [
        ({}, {}, "tdmrep_reservation"),  # tdmrep.json reserves "/" ...
        ({"tdm-reservation": ["0"]}, {}, None),  # ... but the header overrides it
        ({}, {"tdm-reservation": ["0"]}, None),  # ... and so does meta
        ({"tdm-reservation": ["1"]}, {"tdm-reservation": ["0"]}, "header_tdm_reservation"),
        ({"x-robots-tag": ["gallery-crawler: noimageai"], "tdm-reservation": ["0"]}, {}, "header_noimageai"),
        ({"tdm-reservation": ["0"]}, {"robots": ["noai"]}, "meta_noai"),
        ({"tdm-reservation": ["0"]}, {"gallery-crawler": ["noimageindex"]}, "meta_noimageindex"),
        ({"tdm-reservation": ["0"], "content-usage": ["train-ai=n"]}, {}, "header_content_usage"),
    ],
)
def test_site_policy_after_response(headers, meta, reason):
    site = _site(tdm=json.dumps([{"location": "/", "tdm-reservation": 1}]).encode())
    decisions = site.after_response("http://a.test/page", headers=headers, meta=meta, token=TOKEN)
    blocked = [d.reason for d in decisions if not d.allowed]
    assert blocked == ([reason] if reason else [])
