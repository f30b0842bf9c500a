import pytest

from robots_policy.reservations import (
    check_reservations,
    check_robots_content_usage,
    robots_content_usage,
    robots_directives,
)

TOKEN = "gallery-crawler"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["noai, noimageai"], {"noai", "noimageai"}),
        (["NoImageAI"], {"noimageai"}),
        (["gallery-crawler: noai"], {"noai"}),
        (["Gallery-Crawler: NOINDEX, nofollow"], {"noindex", "nofollow"}),
        (["googlebot: noindex"], set()),
        (["googlebot: noindex", "all"], {"all"}),
        (["max-snippet: 20, noimageindex"], {"max-snippet: 20", "noimageindex"}),
        ([""], set()),
    ],
)
def test_robots_directives(values, expected):
    assert robots_directives(values, token=TOKEN) == expected


@pytest.mark.parametrize(
    ("kwargs", "allowed", "reason"),
    [
        ({"robots_values": ["index, follow"]}, True, "meta:none,tdm=unset"),
        ({"robots_values": ["noai"]}, False, "meta_noai"),
        ({"robots_values": ["noimageai"]}, False, "meta_noimageai"),
        ({"robots_values": ["noindex"]}, False, "meta_noindex"),
        ({"robots_values": ["noimageindex"]}, False, "meta_noimageindex"),
        ({"robots_values": ["none"]}, False, "meta_none"),
        ({"robots_values": ["otherbot: noai"]}, True, "meta:none,tdm=unset"),
        ({"tdm_reservation": "1"}, False, "meta_tdm_reservation"),
        ({"tdm_reservation": " 1 "}, False, "meta_tdm_reservation"),
        ({"tdm_reservation": "0"}, True, "meta:none,tdm=0"),
        ({"content_usage": ["train-ai=n"]}, False, "meta_content_usage"),
        ({"content_usage": ["train-ai=y, search=y"]}, True, "meta:none,tdm=unset"),
    ],
)
def test_check_reservations(kwargs, allowed, reason):
    decision = check_reservations(where="meta", token=TOKEN, **kwargs)
    assert (decision.allowed, decision.reason) == (allowed, reason)


@pytest.mark.parametrize(
    ("robots", "path", "allowed"),
    [
        ("User-agent: *\nContent-Usage: train-ai=n\n", "/anything", False),
        ("User-agent: *\nContent-Usage: train-ai=y\n", "/anything", True),
        ("User-agent: *\nContent-Usage: /photos/ train-ai=n\n", "/photos/a.jpg", False),
        ("User-agent: *\nContent-Usage: /photos/ train-ai=n\n", "/other", True),
        ("User-agent: *\nContent-Usage: train-ai=n\nContent-Usage: /open/ train-ai=y\n", "/open/x", True),
        ("User-agent: *\nDisallow:\n", "/x", True),
    ],
)
def test_robots_content_usage(robots, path, allowed):
    assert check_robots_content_usage(robots_content_usage(robots), path).allowed is allowed
