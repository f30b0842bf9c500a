"""RFC 9309 conformance, against the data in ../shared/conformance (written by others; never edited).

`robotstxt_cases.json`: all 145 `IsUserAgentAllowed` cases of Google's robots_test.cc, run
through `is_allowed_by_robots`. Every one must agree, except those in EXPECTED_DEVIATIONS,
which must still disagree (so a fix, or a new disagreement, shows up here).

`robotstxt_extra.json`, the same file's other expectations, where our API can express them:
- is_valid_user_agent_to_obey: against `is_valid_product_token`.
- get_path_params_query: against `path_to_match`.
- maybe_escape_pattern: as allow/deny cases, since pattern escaping happens inside the matcher
  (a rule written with the escaped or the unescaped form must block the same URLs).
- parse_report, line counting (ID_LinesNumbersAreCountedCorrectly): as allow/deny cases showing
  that LF, CRLF, CR and mixed line ends all separate lines and groups.
- parse_report, byte order marks (ID_UTF8ByteOrderMarkIsSkipped): as allow/deny cases showing
  which of the lines were obeyed.
Skipped from it:
- parse_report counts as numbers (valid_directives, unknown_directives, last_line_seen): we keep
  no parse statistics; what the counts imply for matching is checked as above.
- parse_report sitemap (ID_NonStandardLineExample_Sitemap): Sitemap lines are ignored, nothing
  in the crawler follows them.
"""

import base64
import json
from pathlib import Path

import pytest

from robots_policy import RobotsRules, is_allowed_by_robots, is_valid_product_token
from robots_policy.robots import path_to_match

CONFORMANCE = Path(__file__).parents[3] / "shared/conformance"
CASES = json.loads((CONFORMANCE / "robotstxt_cases.json").read_text(encoding="utf-8"))
EXTRA = json.loads((CONFORMANCE / "robotstxt_extra.json").read_text(encoding="utf-8"))["other_facts"]

# Where we follow RFC 9309 §2.2.2 rather than Google's parser, which compares the URL's octets
# exactly as given. The RFC has non-ASCII octets percent-encoded and percent-encoded unreserved
# characters decoded, in the URL and in rules alike, before comparing (its own example: rule
# /foo/bar/%62%61%7A matches /foo/bar/baz); Protego does that already. Scrapy sends
# percent-encoded URLs, so 63 and 65 cannot even arise in a crawl.
# index in robotstxt_cases.json: (its "test", its "url", why we differ)
EXPECTED_DEVIATIONS = {
    63: (
        "ID_Encoding",
        "http://foo.bar/foo/bar/ツ",
        "the URL's ツ is percent-encoded before matching, so 'Allow: /foo/bar/ツ' matches it (§2.2.2)",
    ),
    65: (
        "ID_Encoding",
        "http://foo.bar/foo/bar/ツ",
        "the URL's ツ is percent-encoded before matching, so it matches 'Allow: /foo/bar/%E3%83%84' (§2.2.2)",
    ),
    66: (
        "ID_Encoding",
        "http://foo.bar/foo/bar/baz",
        "unreserved escapes (%62%61%7A) are decoded before matching, so it matches baz (§2.2.2 example)",
    ),
}


def _case_id(index: int) -> str:
    return f"{index:03d}-{CASES[index]['test']}"


@pytest.mark.parametrize("index", range(len(CASES)), ids=_case_id)
def test_google_case(index):
    case = CASES[index]
    allowed = is_allowed_by_robots(case["robotstxt"], case["user_agent"], case["url"])
    if index in EXPECTED_DEVIATIONS:
        assert allowed is not case["allowed"], "now agrees with Google: remove it from EXPECTED_DEVIATIONS"
    else:
        assert allowed is case["allowed"]


def test_all_145_cases_are_run():
    assert len(CASES) == 145


def test_deviations_are_the_three_named_ones():
    # A new deviation is a decision, not a way to make a test pass: it goes in the list
    # above with its reason, and this count changes with it.
    assert len(EXPECTED_DEVIATIONS) == 3
    for index, (test, url, reason) in EXPECTED_DEVIATIONS.items():
        assert (CASES[index]["test"], CASES[index]["url"]) == (test, url)
        assert reason
    passed = sum(
        is_allowed_by_robots(c["robotstxt"], c["user_agent"], c["url"]) is c["allowed"] for c in CASES
    )
    assert passed == len(CASES) - len(EXPECTED_DEVIATIONS) == 142


# RFC 9309 §2.2.2 and §2.2.3 examples, the ones Google's cases above do not hold (rule, URL path).
@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ("/foo/bar?baz=quz", "/foo/bar?baz=quz"),
        ("/foo/bar/ツ", "/foo/bar/%E3%83%84"),
        ("/foo/bar/%E3%83%84", "/foo/bar/%E3%83%84"),
        ("/foo/bar/%62%61%7A", "/foo/bar/baz"),
        ("/path/file-with-a-%2A.html", "/path/file-with-a-*.html"),
        ("/path/file-with-a-%2A.html", "/path/file-with-a-%2A.html"),
        ("/path/foo-%24", "/path/foo-$"),
        ("/path/foo-%24", "/path/foo-%24"),
    ],
)
def test_rfc_percent_encoding_examples(rule, path):
    assert not is_allowed_by_robots(f"User-agent: *\nDisallow: {rule}\n", "x", "http://a.test" + path)


@pytest.mark.parametrize(
    ("rule", "path"),
    [("/path/file-with-a-%2A.html", "/path/file-with-a-x.html"), ("/path/foo-%24", "/path/foo-x")],
)
def test_escaped_special_characters_are_not_wildcards(rule, path):
    assert is_allowed_by_robots(f"User-agent: *\nDisallow: {rule}\n", "x", "http://a.test" + path)


@pytest.mark.parametrize("fact", EXTRA["is_valid_user_agent_to_obey"], ids=lambda f: f"line{f['line']}")
def test_product_token_validity(fact):
    assert is_valid_product_token(fact["user_agent"]) is fact["valid"]


@pytest.mark.parametrize("fact", EXTRA["get_path_params_query"], ids=lambda f: f"line{f['line']}")
def test_path_to_match(fact):
    assert path_to_match(fact["input"]) == fact["expected"]


# maybe_escape_pattern, as matching: Google escapes a rule's pattern (input) to `expected`
# before comparing, so a rule must match the URL paths spelled the escaped way.
# (source line, rule, URL path, blocked)
PATTERN_ESCAPING = [
    (1012, "http://www.example.com", "/", False),  # left as is: not a path, so it matches none
    (1013, "/a/b/c", "/a/b/c", True),
    (1014, "/á", "/%C3%A1", True),
    (1014, "/%C3%A1", "/%C3%A1", True),
    (1015, "/%aa", "/%AA", True),  # escapes compare case-insensitively...
    (1015, "/%AA", "/%aa", True),
    (1015, "/%aa", "/%AB", False),  # ...and octet by octet, even when not UTF-8
]


@pytest.mark.parametrize(("line", "rule", "path", "blocked"), PATTERN_ESCAPING)
def test_pattern_escaping(line, rule, path, blocked):
    robots = f"User-agent: *\nDisallow: {rule}\n"
    assert is_allowed_by_robots(robots, "x", "http://a.test" + path) is not blocked


def test_pattern_escaping_covers_every_fact():
    assert {f["line"] for f in EXTRA["maybe_escape_pattern"]} == {line for line, *_ in PATTERN_ESCAPING}


def _parse_report_texts(test: str) -> dict[int, bytes]:
    """The robots.txt bodies of one parse_report test, by the source line of their first fact."""
    texts: dict[int, bytes] = {}
    for fact in EXTRA["parse_report"]:
        if fact["test"] != test:
            continue
        body = fact["robotstxt"]
        raw = base64.b64decode(body["base64"]) if isinstance(body, dict) else body.encode("utf-8")
        if raw not in texts.values():
            texts[fact["line"]] = raw
    return texts


LINE_END_TEXTS = _parse_report_texts("ID_LinesNumbersAreCountedCorrectly")


@pytest.mark.parametrize("line", sorted(LINE_END_TEXTS), ids=lambda line: f"line{line}")
def test_line_ends(line):
    # "User-Agent: foo / Allow: /some/path / User-Agent: bar / (2 blank) / Disallow: /", with
    # each kind of line end: 4 directives on 6 lines, so two groups, foo's and bar's.
    rules = RobotsRules.from_fetch(status=200, body=LINE_END_TEXTS[line])
    assert rules.allows("http://a.test/x", "foo")
    assert not rules.allows("http://a.test/x", "bar")
    assert not rules.allows("http://a.test/some/path", "bar")


def test_line_end_texts_are_the_five_variants():
    assert len(LINE_END_TEXTS) == 5


# For each body of ID_UTF8ByteOrderMarkIsSkipped, with "Disallow: /" added to its group:
# (is /AnyValue allowed to foo, is /other allowed to foo), following from which of its two
# lines Google counts as valid directives.
BOM_TEXTS = _parse_report_texts("ID_UTF8ByteOrderMarkIsSkipped")
BOM_EXPECTED = {
    889: (True, False),  # U+FEFF then the file: BOM skipped, both lines obeyed
    898: (True, False),  # EF BB BF: the same, as bytes
    906: (True, False),  # EF BB: a truncated BOM is skipped too
    916: (True, True),  # EF 11 BF: not a BOM, spoils the user-agent line, so no group for foo
    925: (False, False),  # U+FEFF in front of the second line spoils the Allow line only
}


@pytest.mark.parametrize("line", sorted(BOM_EXPECTED), ids=lambda line: f"line{line}")
def test_byte_order_mark(line):
    rules = RobotsRules.from_fetch(status=200, body=BOM_TEXTS[line] + b"Disallow: /\n")
    got = (rules.allows("http://a.test/AnyValue", "foo"), rules.allows("http://a.test/other", "foo"))
    assert got == BOM_EXPECTED[line]


def test_byte_order_mark_texts_are_all_covered():
    assert set(BOM_TEXTS) == set(BOM_EXPECTED)
