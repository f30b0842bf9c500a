import pytest

from robots_policy.optout import OptOutError, OptOutList

LIST = """
# steward list
example.org
https://photos.example.net/private/   # one folder
sha256:""" + "ab" * 32 + """
pdq:""" + "f0" * 32 + "\n"


@pytest.mark.parametrize(
    ("url", "allowed", "reason"),
    [
        ("https://example.org/a.jpg", False, "optout_domain"),
        ("https://cdn.example.org/a.jpg", False, "optout_domain"),
        ("https://notexample.org/a.jpg", True, "optout:none"),
        ("https://photos.example.net/private/1.jpg", False, "optout_url_prefix"),
        ("https://photos.example.net/public/1.jpg", True, "optout:none"),
    ],
)
def test_check_url(url, allowed, reason):
    decision = OptOutList.parse(LIST).check_url(url)
    assert (decision.allowed, decision.reason) == (allowed, reason)


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("https://Ex.org/fotos/", "https://ex.org/fotos/a.jpg"),  # issue 14 bug 2
        ("HTTPS://EX.ORG:443/fotos/", "https://ex.org/fotos/a.jpg"),
        ("https://ex.org/fotos/ä b", "https://ex.org/fotos/%C3%A4%20b.jpg"),
        ("https://ex.org/fotos/", "https://Ex.org/fotos/a.jpg"),
    ],
)
def test_url_prefix_is_compared_in_canonical_form(entry, url):
    assert OptOutList.parse(entry).check_url(url).reason == "optout_url_prefix"


def test_check_image():
    optouts = OptOutList.parse(LIST)
    assert optouts.check_image(sha256="ab" * 32, pdq=bytes(32)).reason == "optout_sha256"
    near = bytearray.fromhex("f0" * 32)
    near[0] ^= 0b1111  # 4 bits away
    assert optouts.check_image(sha256="00" * 32, pdq=bytes(near)).reason == "optout_pdq"
    assert optouts.check_image(sha256="00" * 32, pdq=bytes(32)).allowed
    # PDQ unknown (a stored image whose hash was not read back): only sha256 entries can match.
    assert optouts.has_pdq and not OptOutList.parse("sha256:" + "ab" * 32).has_pdq
    assert optouts.check_image(sha256="ab" * 32, pdq=None).reason == "optout_sha256"
    assert optouts.check_image(sha256="00" * 32, pdq=None).allowed


@pytest.mark.parametrize(
    ("text", "message"),
    [("sha256:abc", "list.txt:1: sha256 entry needs 64 hex digits"), ("ok.org\nnot a domain", "list.txt:2:"),
     ("pdq:" + "zz" * 32, "hex digits"), ("localhost", "not a domain")],
)
def test_bad_lines_name_their_line(text, message):
    with pytest.raises(OptOutError, match=message):
        OptOutList.parse(text, source="list.txt")
