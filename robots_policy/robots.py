"""robots.txt (RFC 9309): how a fetch outcome becomes rules, and what the rules say about a URL."""

import re
from dataclasses import dataclass, field

from protego import Protego

from robots_policy.decision import Decision

# Protego matches one group's rules against a path: percent-encoding, `*` and `$`, longest
# match, Allow on ties, and Crawl-delay. The steps around that are done here, because
# Protego's differ from RFC 9309 and from Google's parser (../shared/conformance):
# - lines: only CR, LF and CRLF end a line, and an overlong line is cut, not kept whole;
# - groups: only Allow/Disallow end a group's user-agent lines; any other line (Sitemap,
#   Crawl-delay, unknown records) does not split a group in two;
# - agents: a user-agent value names the product token at its start ("FOO BAR" names "foo",
#   "Foobot/2.1" names "foobot"), and our token must equal it, ignoring case; Protego would
#   also let "foo" apply to a crawler called "foo-bar";
# - paths: a %XX escape that is not UTF-8 is compared as that octet; Protego decodes every
#   escape as UTF-8, so "Allow: /caf%E9" would also allow /caf%E8.

# RFC 9309 §2.5: parsers must handle at least 500 KiB; anything past the limit is ignored.
MAX_ROBOTS_BYTES = 512 * 1024
# Sitemap lines read from one robots.txt; a file listing thousands is a trap, not an index.
MAX_ROBOTS_SITEMAPS = 50

# Google's parser keeps at most this many bytes of a line (8 times the 2083-byte URL limit
# of old browsers, less its terminator) and drops the rest; it bounds the cost of one rule.
MAX_LINE_BYTES = 2083 * 8 - 1

_UTF8_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(r"\r\n|\r|\n")  # RFC 9309 §2.2: str.splitlines() would also split on \x85, \u2028...
_BLANK = " \t"  # RFC 9309 whitespace; str.strip() would also eat e.g. a no-break space
_BLANKS = re.compile(r"[ \t]+")
_IDENTIFIER = re.compile(r"[A-Za-z_-]+")  # RFC 9309 §2.2.1 product token characters
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# What str.splitlines() reads as a line break besides CR and LF.
_SPLITLINES_BREAKS = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_URL_DELIMS = "/?;"

# Record names, lower-cased, as RFC 9309 writes them plus the misspellings that Google's
# parser and Protego both accept (site owners write them, and mean them).
_FIELDS = {
    "user-agent": "user-agent",
    "useragent": "user-agent",
    "user agent": "user-agent",
    "allow": "allow",
    "disallow": "disallow",
    "dissallow": "disallow",
    "dissalow": "disallow",
    "disalow": "disallow",
    "diasllow": "disallow",
    "disallaw": "disallow",
    "crawl-delay": "crawl-delay",
    "crawl delay": "crawl-delay",
}
_RULES = ("allow", "disallow")
_GROUP_MEMBERS = (*_RULES, "crawl-delay")

# Protego is handed a URL; any origin will do, since rules only see the path. A fixed one
# also keeps a path starting with "//" from being read as a host.
_MATCH_ORIGIN = "http://robots.invalid"


def is_allowed_by_robots(robots_txt: str, user_agent: str, url: str) -> bool:
    """May `user_agent`, a product token such as "gallery-crawler", fetch `url` under this robots.txt?"""
    return RobotsRules.parse(robots_txt).allows(url, user_agent)


def sitemap_urls(robots_txt: str) -> list[str]:
    """The `Sitemap:` URLs a robots.txt names (they apply to every crawler, outside any group),
    at most MAX_ROBOTS_SITEMAPS."""
    return list(dict.fromkeys(Protego.parse(robots_txt).sitemaps))[:MAX_ROBOTS_SITEMAPS]


def is_valid_product_token(token: str) -> bool:
    """Is `token` usable as our user-agent product token (RFC 9309 §2.2.1: letters, "-" and "_")?

    An invalid token ("Foobot/2.1", "Foo Bar") can never equal a token named in a robots.txt,
    so a crawler using one would silently obey only the "*" group.
    """
    return _IDENTIFIER.fullmatch(token) is not None


def path_to_match(url: str) -> str:
    """The part of `url` that robots.txt rules are matched against: path, params and query.

    Scheme, authority and fragment are dropped; the result always starts with "/". An input
    without a scheme is read as host first ("example.com/a" gives "/a"), as Google's parser does.
    """
    # A network-path reference ("//host/path") starts with its authority.
    start = 2 if url.startswith("//") else 0
    scheme_end = url.find("://", start)
    first_delim = _find_any(url, _URL_DELIMS, start)
    if scheme_end != -1 and (first_delim == -1 or scheme_end < first_delim):
        start = scheme_end + 3
    path_start = _find_any(url, _URL_DELIMS, start)
    if path_start == -1:
        return "/"
    fragment = url.find("#", start)
    if fragment != -1 and fragment < path_start:
        return "/"
    path = url[path_start : fragment if fragment != -1 else len(url)]
    return path if path.startswith("/") else "/" + path


@dataclass(frozen=True)
class RobotsGroup:
    """One group of a robots.txt: the product tokens its user-agent lines name, and its rules."""

    agents: frozenset[str]  # lower-cased product tokens; "*" for the global group
    rules: tuple[tuple[str, str], ...]  # (record, value) in file order: allow, disallow, crawl-delay


@dataclass(frozen=True)
class RobotsRules:
    """The rules for one origin: parsed groups, or a blanket allow/deny with the RFC's reason."""

    groups: tuple[RobotsGroup, ...] | None  # None: no file to parse, `blanket_allow` decides
    blanket_allow: bool
    source: str  # "200", "4xx", "5xx", "unreachable": how the rules were obtained
    # One Protego per product token asked about, built on first use: most groups of a big
    # robots.txt are for other crawlers and never need matching.
    _matchers: dict[str, Protego | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, body: str, source: str = "200") -> "RobotsRules":
        return cls(groups=_parse_groups(body[:MAX_ROBOTS_BYTES]), blanket_allow=True, source=source)

    @classmethod
    def from_fetch(cls, *, status: int | None, body: bytes) -> "RobotsRules":
        """Rules from a robots.txt fetch outcome; `status` None means it could not be fetched.

        RFC 9309 §2.3.1: 2xx is parsed, 4xx ("unavailable") allows everything,
        5xx and network errors ("unreachable") disallow everything.
        """
        if status is None:
            return cls(groups=None, blanket_allow=False, source="unreachable")
        if 200 <= status < 300:
            text = _skip_bom(body[:MAX_ROBOTS_BYTES]).decode("utf-8", errors="replace")
            return cls.parse(text)
        if 400 <= status < 500:
            return cls(groups=None, blanket_allow=True, source="4xx")
        return cls(groups=None, blanket_allow=False, source="5xx")

    def allows(self, url: str, user_agent: str) -> bool:
        path = path_to_match(url)
        # RFC 9309 §2.2.2: /robots.txt is implicitly allowed, whatever the rules or status.
        if path.partition("?")[0] == "/robots.txt":
            return True
        if self.groups is None:
            return self.blanket_allow
        matcher = self._matcher(user_agent)
        if matcher is None:
            return True
        return matcher.can_fetch(_MATCH_ORIGIN + _octet_escapes(path), "*")

    def decide(self, url: str, user_agent: str) -> Decision:
        if self.allows(url, user_agent):
            return Decision.allow(f"robots:allow({self.source})")
        if self.groups is None:
            return Decision.block(f"robots_{self.source}")
        return Decision.block("robots")

    def crawl_delay(self, user_agent: str) -> float | None:
        matcher = self._matcher(user_agent) if self.groups is not None else None
        return matcher.crawl_delay("*") if matcher else None

    def _matcher(self, user_agent: str) -> Protego | None:
        """Protego over the merged rules of the groups that apply to `user_agent`; None if none do.

        RFC 9309 §2.2.1: every group naming our token applies, merged; if none does, the "*"
        groups do; if there are none of those either, nothing is disallowed.
        """
        token = user_agent.lower()
        if token not in self._matchers:
            assert self.groups is not None
            chosen = [g for g in self.groups if token in g.agents]
            chosen = chosen or [g for g in self.groups if "*" in g.agents]
            self._matchers[token] = Protego.parse(_as_one_group(chosen)) if chosen else None
        return self._matchers[token]


def _parse_groups(text: str) -> tuple[RobotsGroup, ...]:
    groups: list[RobotsGroup] = []
    agents: set[str] = set()
    rules: list[tuple[str, str]] = []
    in_group = False  # a user-agent line has been seen: rules before the first one apply to no one
    in_rules = False  # an Allow/Disallow has been seen: the next user-agent line starts a new group
    for line in _EOL.split(text.removeprefix("\ufeff")):
        record = _record(_cut(line))
        if record is None:
            continue
        name, value = record
        if name == "user-agent":
            if in_rules:
                groups.append(RobotsGroup(frozenset(agents), tuple(rules)))
                agents, rules, in_rules = set(), [], False
            in_group = True
            token = _group_token(value)
            if token:
                agents.add(token)
        elif in_group and name in _GROUP_MEMBERS:
            # An empty Allow/Disallow matches nothing but still ends the user-agent lines.
            in_rules = in_rules or name in _RULES
            if value:
                rules.append((name, value))
    if in_group:
        groups.append(RobotsGroup(frozenset(agents), tuple(rules)))
    # A group whose user-agent values name no usable token applies to no one.
    return tuple(g for g in groups if g.agents)


def _record(line: str) -> tuple[str, str] | None:
    """(record name, value) of a line, the name mapped to its RFC 9309 spelling; None for no record."""
    line = line.partition("#")[0].strip(_BLANK)
    if not line:
        return None
    name, colon, value = line.partition(":")
    if not colon:
        # Google's parser accepts a forgotten colon ("Disallow /x") when the line is two words.
        words = _BLANKS.split(line)
        if len(words) != 2:
            return None
        name, value = words
    name = name.strip(_BLANK).lower()
    if not name:
        return None
    return _FIELDS.get(name, name), value.strip(_BLANK)


def _group_token(value: str) -> str | None:
    """The product token a user-agent value names, lower-cased: "*", a token, or None."""
    # Google's parser reads "* anything" as the global group too.
    if _BLANKS.split(value, maxsplit=1)[0] == "*":
        return "*"
    match = _IDENTIFIER.match(value)
    return match.group().lower() if match else None


def _as_one_group(groups: list[RobotsGroup]) -> str:
    """A robots.txt with the rules of `groups` as one "*" group, for Protego to match."""
    lines = ["User-agent: *"]
    for group in groups:
        for name, value in group.rules:
            # Protego splits its input with str.splitlines(): a character that ends a line
            # there is passed percent-encoded, as Protego would encode it in a path anyway.
            value = _SPLITLINES_BREAKS.sub(lambda m: _utf8_escapes(m.group()), value)
            lines.append(f"{name}: {_octet_escapes(value) if name in _RULES else value}")
    return "\n".join(lines)


def _octet_escapes(text: str) -> str:
    """`text` with every %XX escape that is not part of UTF-8 spelled so Protego keeps it.

    Protego decodes escapes as UTF-8 and would turn each invalid octet into U+FFFD, making
    all of them equal. "%25" is the one escape it never decodes, so "%E9" is passed as
    "%25E9" and a real "%25" as "%2525": URL and rules are rewritten alike, nothing collides.
    """
    if "%" not in text:
        return text
    return _ESCAPES.sub(_respell_escapes, text)


def _respell_escapes(match: re.Match) -> str:
    octets = bytes.fromhex(match.group().replace("%", ""))
    out = []
    for char in octets.decode("utf-8", errors="surrogateescape"):
        if char == "%":
            out.append("%2525")
        elif "\udc80" <= char <= "\udcff":  # surrogateescape's stand-in for a non-UTF-8 octet
            out.append(f"%25{ord(char) - 0xDC00:02X}")
        else:
            out.append(_utf8_escapes(char))
    return "".join(out)


def _utf8_escapes(text: str) -> str:
    return "".join(f"%{octet:02X}" for octet in text.encode("utf-8"))


def _cut(line: str) -> str:
    if len(line) * 4 <= MAX_LINE_BYTES:  # short enough even if every character took 4 bytes
        return line
    return line.encode("utf-8", errors="surrogatepass")[:MAX_LINE_BYTES].decode("utf-8", errors="ignore")


def _skip_bom(body: bytes) -> bytes:
    # Like Google's parser, skip a UTF-8 byte order mark, even a truncated one.
    for length in (3, 2, 1):
        if body.startswith(_UTF8_BOM[:length]):
            return body[length:]
    return body


def _find_any(text: str, chars: str, start: int) -> int:
    positions = [p for p in (text.find(c, start) for c in chars) if p != -1]
    return min(positions) if positions else -1
