"""The one never-collect matcher, table-driven, and its indexes against a plain linear scan."""

import random

import pytest

from robots_policy.never_collect import Entry, NeverCollect, canonical_url

ENTRIES = [
    Entry("url", "http://gone.test/a.jpg"),
    Entry("url", "https://Ex.org/fotos/ä b.jpg"),
    Entry("url_prefix", "http://shop.test/private/"),
    Entry("url_prefix", "HTTP://Shop.TEST:80/private/deeper/"),  # covered by the one above
    Entry("url_prefix", "http://shop.test/z"),
    Entry("domain", "Example.COM."),
    Entry("domain", "bücher.de"),
    Entry("domain", "20.0.0.1"),
]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://gone.test/a.jpg", "url"),
        ("HTTP://GONE.test:80/a.jpg#x", "url"),
        ("http://gone.test/a.jpg?v=2", None),
        ("https://ex.org/fotos/%C3%A4%20b.jpg", "url"),
        ("https://ex.org/fotos/%c3%a4%20b.jpg", "url"),
        ("https://EX.ORG/fotos/ä b.jpg", "url"),
        ("http://shop.test/private/1.jpg", "url_prefix"),
        ("http://shop.test/private/deeper/1.jpg", "url_prefix"),
        ("http://shop.test/privatex", None),
        ("http://shop.test/public/1.jpg", None),
        ("http://shop.test/zebra", "url_prefix"),
        ("http://example.com/", "domain"),
        ("https://cdn.img.example.com/x.png", "domain"),
        ("http://notexample.com/", None),
        ("http://example.com.evil.test/", None),
        ("https://www.bücher.de/x", "domain"),
        ("https://www.xn--bcher-kva.de/x", "domain"),
        ("http://20.0.0.1/", "domain"),
        ("http://120.0.0.1/", None),
    ],
)
def test_url_match(url, kind):
    assert NeverCollect(ENTRIES).url_match(url) == kind


def test_canonical_url_is_idempotent_and_keeps_the_query_order():
    for url in ("https://Ex.org/fotos/ä b.jpg", "http://a.test/?b=2&a=1", "http://[::1]:8000/x", "https://ex.org"):
        once = canonical_url(url)
        assert canonical_url(once) == once
    assert canonical_url("http://a.test/?b=2&a=1") == "http://a.test/?b=2&a=1"
    assert canonical_url("https://ex.org", prefix=True) == "https://ex.org"
    assert canonical_url("https://ex.org") == "https://ex.org/"


def test_fast_path_agrees_with_safe_url_string():
    from w3lib.url import safe_url_string

    from robots_policy import never_collect

    rng = random.Random(14)
    alphabet = "ABCxyz019-._~:/?#[]@!$&()*+,;='% ä"
    for _ in range(20_000):
        url = rng.choice(["https://h.test", "http://A.b.C:8080", "https://h.test:443", "HTTPS://x.Y", "http://h.test.", "http://h.test:080", "http://h:80"])
        url += rng.choice(["", "/"]) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        if never_collect._ALREADY_SAFE.match(url):
            # Skipping safe_url_string changes nothing in the canonical form.
            assert canonical_url(safe_url_string(url)) == canonical_url(url), url
        for prefix in (False, True):
            try:
                expected = canonical_url(url, prefix=prefix)
            except ValueError:  # not a URL at all (a stray "["): never an entry, parsing refuses it
                continue
            assert never_collect._as_canonical(url, prefix=prefix) == expected, url


def _flip(value: bytes, bits: int) -> bytes:
    number = int.from_bytes(value, "big")
    for bit in range(bits):
        number ^= 1 << (bit * 7 % (len(value) * 8))
    return number.to_bytes(len(value), "big")


def test_image_match_thresholds_and_groups():
    pdq, phash = bytes(range(32)), bytes(range(8))
    other_pdq, other_phash = bytes([255]) * 32, bytes([255]) * 8
    single = NeverCollect([Entry("pdq", pdq.hex()), Entry("sha256", "ab" * 32)])
    assert single.image_match(sha256="ab" * 32) == "sha256"
    assert single.image_match(sha256="00", pdq=_flip(pdq, 31)) == "pdq"
    assert single.image_match(sha256="00", pdq=_flip(pdq, 32)) is None
    assert single.image_match(sha256="00", pdq=None) is None
    assert single.has_kind("pdq") and not single.has_kind("phash")
    grouped = NeverCollect([Entry("pdq", pdq.hex(), "g1"), Entry("phash", phash.hex(), "g1"), Entry("pdq", other_pdq.hex(), "g2"), Entry("phash", other_phash.hex(), "g2")])
    # Both hashes of one group must match; one from each group is not a match.
    assert grouped.image_match(sha256="00", pdq=pdq, phash=_flip(phash, 8)) == "pdq+phash"
    assert grouped.image_match(sha256="00", pdq=pdq, phash=_flip(phash, 9)) is None
    assert grouped.image_match(sha256="00", pdq=pdq, phash=other_phash) is None
    assert grouped.image_match(sha256="00", pdq=pdq) is None


def _linear(entries: list[Entry], url: str) -> bool:
    canonical = canonical_url(url)
    host = canonical.split("/")[2]
    for entry in entries:
        if entry.kind == "url" and canonical == canonical_url(entry.value):
            return True
        if entry.kind == "url_prefix" and canonical.startswith(canonical_url(entry.value, prefix=True)):
            return True
        if entry.kind == "domain" and (host == entry.value or host.endswith("." + entry.value)):
            return True
    return False


def test_indexed_matcher_agrees_with_a_linear_scan():
    rng = random.Random(14)
    words = ["a", "ab", "abc", "b", "x", "xy"]

    def path(depth):
        return "/".join(rng.choice(words) for _ in range(depth))

    hosts = ["h1.test", "h2.test", "sub.h1.test"]
    entries = [Entry("url_prefix", f"http://{rng.choice(hosts)}/{path(rng.randint(0, 3))}") for _ in range(60)]
    entries += [Entry("url", f"http://{rng.choice(hosts)}/{path(3)}") for _ in range(60)]
    entries += [Entry("domain", "sub.h1.test")]
    matcher = NeverCollect(entries)
    for _ in range(2000):
        url = f"http://{rng.choice(hosts)}/{path(rng.randint(0, 4))}"
        assert matcher.blocks_url(url) is _linear(entries, url), url
