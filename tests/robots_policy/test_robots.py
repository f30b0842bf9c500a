import pytest

from robots_policy import RobotsRules, is_allowed_by_robots, is_valid_product_token
from robots_policy.robots import MAX_ROBOTS_BYTES

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


SPLIT_GROUPS = "User-agent: a\nDisallow: /x\n\nUser-agent: *\nDisallow: /\n\nUser-agent: A\nDisallow: /y\n"


@pytest.mark.parametrize(
    ("robots", "agent", "url", "allowed"),
    [
        # Only Allow/Disallow end a group's user-agent lines (RFC 9309 §2.2.4: other records
        # must not interfere with groups), so both agents share "Disallow: /".
        ("User-agent: a\nCrawl-delay: 5\nUser-agent: b\nDisallow: /\n", "a", "http://h.test/x", False),
        ("User-agent: a\nSitemap: /s.xml\nUser-agent: b\nDisallow: /\n", "a", "http://h.test/x", False),
        ("User-agent: a\nContent-Usage: train-ai=n\nUser-agent: b\nDisallow: /", "a", "http://h.test/", False),
        # An empty Disallow matches nothing, but still ends the user-agent lines.
        ("User-agent: a\nDisallow:\nUser-agent: b\nDisallow: /\n", "a", "http://h.test/x", True),
        # Groups naming the same token are merged, wherever they are in the file.
        (SPLIT_GROUPS, "a", "http://h.test/x", False),
        (SPLIT_GROUPS, "a", "http://h.test/y", False),
        (SPLIT_GROUPS, "a", "http://h.test/z", True),
        # Our token must equal the group's, not just start it or sit inside it.
        ("User-agent: gallery\nDisallow: /\n", "gallery-crawler", "http://h.test/x", True),
        ("User-agent: crawler\nDisallow: /\n", "gallery-crawler", "http://h.test/x", True),
        ("User-agent: gallery-crawler/2.0\nDisallow: /\n", "gallery-crawler", "http://h.test/x", False),
        ("User-agent: gallery-crawler\nDisallow: /\n", "Gallery-Crawler", "http://h.test/x", False),
        # A token that is not one (a whole User-Agent header) matches no group, only "*".
        ("User-agent: gallery-crawler\nDisallow: /\n", "gallery-crawler/1.0", "http://h.test/x", True),
        ("User-agent: * # everyone\nDisallow: /\n", "gallery-crawler", "http://h.test/x", False),
        ("User-agent: *bot\nDisallow: /\n", "gallery-crawler", "http://h.test/x", True),
        # Rules before the first user-agent line belong to no group.
        ("Disallow: /\nUser-agent: *\nAllow: /\n", "gallery-crawler", "http://h.test/x", True),
        # A character str.splitlines() breaks on must not cut a rule short.
        ("User-agent: *\nDisallow: /\nAllow: /a\x0cb\n", "x", "http://h.test/a", False),
        ("User-agent: *\nDisallow: /\nAllow: /a\x0cb\n", "x", "http://h.test/a%0Cb", True),
        # Octets that are not UTF-8 compare as themselves (Protego alone lets /caf%E9 allow /caf%E8).
        ("User-agent: *\nDisallow: /\nAllow: /caf%E9\n", "x", "http://h.test/caf%e9", True),
        ("User-agent: *\nDisallow: /\nAllow: /caf%E9\n", "x", "http://h.test/caf%E8", False),
        ("User-agent: *\nDisallow: /a%25E9\n", "x", "http://h.test/a%E9", True),
    ],
)
def test_groups_tokens_and_paths(robots, agent, url, allowed):
    assert is_allowed_by_robots(robots, agent, url) is allowed


def test_crawl_delay_follows_the_merged_group():
    rules = RobotsRules.parse(
        "User-agent: a\nCrawl-delay: 5\nUser-agent: b\nDisallow: /x\n\nUser-agent: *\nCrawl-delay: 1\n"
    )
    assert (rules.crawl_delay("a"), rules.crawl_delay("B"), rules.crawl_delay("c")) == (5.0, 5.0, 1.0)
    assert RobotsRules.parse("User-agent: a\nDisallow: /\n").crawl_delay("c") is None
    assert RobotsRules.from_fetch(status=503, body=b"").crawl_delay("a") is None


def test_a_rule_past_500_kib_is_obeyed():
    # RFC 9309 §2.5: at least 500 KiB must be parsed.
    body = (b"# " + b"p" * 1022 + b"\n") * 500 + b"User-agent: *\nDisallow: /late/\n"
    assert 500 * 1024 < len(body) <= MAX_ROBOTS_BYTES
    assert not RobotsRules.from_fetch(status=200, body=body).allows("http://a.test/late/x", UA)


def test_an_overlong_line_is_cut_not_dropped():
    pattern = "/x/" + "a" * 20_000
    rules = RobotsRules.parse(f"User-agent: *\nDisallow: {pattern}\n")
    assert not rules.allows("http://a.test" + pattern[:17_000] + "b", UA)
    assert rules.allows("http://a.test/x/b", UA)


def test_crlf_and_cr_line_ends():
    for eol in ("\r\n", "\r"):
        rules = RobotsRules.parse(eol.join(["User-agent: *", "Disallow: /a", "Allow: /a/b", ""]))
        assert not rules.allows("http://a.test/a/c", UA)
        assert rules.allows("http://a.test/a/b", UA)


@pytest.mark.parametrize("token", ["gallery-crawler", "Foo_Bar", "x"])
def test_valid_product_token(token):
    assert is_valid_product_token(token)


@pytest.mark.parametrize("token", ["", "gallery-crawler/1.0", "gallery crawler", "bot*", "ツ", " bot"])
def test_invalid_product_token(token):
    assert not is_valid_product_token(token)
