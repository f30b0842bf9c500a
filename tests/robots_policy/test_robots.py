import pytest

from robots_policy import RobotsRules, is_allowed_by_robots

UA = "gallery-crawler"


@pytest.mark.parametrize(
    ("status", "body", "url", "allowed", "reason"),
    [
        (200, b"User-agent: *\nDisallow: /private/\n", "http://a.test/private/x", False, "robots"),
        (200, b"User-agent: *\nDisallow: /private/\n", "http://a.test/public", True, "robots:allow(200)"),
        (404, b"", "http://a.test/anything", True, "robots:allow(4xx)"),
        (401, b"", "http://a.test/anything", True, "robots:allow(4xx)"),
        (500, b"", "http://a.test/anything", False, "robots_5xx"),
        (503, b"", "http://a.test/anything", False, "robots_5xx"),
        (None, b"", "http://a.test/anything", False, "robots_unreachable"),
        # /robots.txt itself is always allowed, even under "disallow all".
        (503, b"", "http://a.test/robots.txt", True, "robots:allow(5xx)"),
        (200, b"User-agent: *\nDisallow: /\n", "http://a.test/robots.txt", True, "robots:allow(200)"),
    ],
)
def test_rules_from_fetch(status, body, url, allowed, reason):
    decision = RobotsRules.from_fetch(status=status, body=body).decide(url, UA)
    assert (decision.allowed, decision.reason) == (allowed, reason)


@pytest.mark.parametrize(
    ("robots", "url", "allowed"),
    [
        ("User-agent: gallery-crawler\nDisallow: /\n\nUser-agent: *\nAllow: /\n", "http://a.test/x", False),
        ("User-agent: Gallery-Crawler\nDisallow: /x\n", "http://a.test/x", False),  # token case-insensitive
        ("User-agent: otherbot\nDisallow: /\n", "http://a.test/x", True),
        ("User-agent: *\nDisallow: /*.jpg$\n", "http://a.test/a.jpg", False),
        ("User-agent: *\nDisallow: /*.jpg$\n", "http://a.test/a.jpg?x=1", True),
        ("User-agent: *\nDisallow: /a\nAllow: /a/b\n", "http://a.test/a/b/c", True),  # longest match
    ],
)
def test_is_allowed_by_robots(robots, url, allowed):
    assert is_allowed_by_robots(robots, UA, url) is allowed


def test_huge_robots_txt_is_cut_not_refused():
    body = b"User-agent: *\nDisallow: /private/\n" + b"# padding\n" * 200_000
    rules = RobotsRules.from_fetch(status=200, body=body)
    assert not rules.allows("http://a.test/private/x", UA)
    assert rules.allows("http://a.test/public", UA)


def test_binary_robots_txt_does_not_crash():
    rules = RobotsRules.from_fetch(status=200, body=bytes(range(256)) * 100)
    assert rules.allows("http://a.test/x", UA)
