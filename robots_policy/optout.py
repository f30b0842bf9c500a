"""Steward opt-out lists: domains, URL prefixes and image hashes that must never be collected.

File format, one entry a line, "#" starts a comment:
    example.org                      a registrable domain, subdomains included
    https://example.net/photos/      a URL prefix
    sha256:<64 hex>  pdq:<64 hex>    an image, exactly (sha256) or near (robots_policy/match_thresholds.py)

Matched by robots_policy/never_collect.py, the same matcher removal tombstones use.
"""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from robots_policy.decision import Decision
from robots_policy.never_collect import Entry, NeverCollect, canonical_url

_HASH_HEX_DIGITS = {"sha256": 64, "pdq": 64}


class OptOutError(ValueError):
    """An entry that is none of the accepted forms; the message names the line."""


@dataclass(frozen=True)
class OptOutEntry:
    kind: str  # "domain", "url_prefix", "sha256", "pdq"
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}" if self.kind in _HASH_HEX_DIGITS else self.value


def parse_entry(text: str) -> OptOutEntry:
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if sep and kind.lower() in _HASH_HEX_DIGITS:
        kind, rest = kind.lower(), rest.strip().lower()
        if len(rest) != _HASH_HEX_DIGITS[kind] or any(c not in "0123456789abcdef" for c in rest):
            raise OptOutError(f"{kind} entry needs {_HASH_HEX_DIGITS[kind]} hex digits: {text!r}")
        return OptOutEntry(kind, rest)
    if text.lower().startswith(("http://", "https://")):
        if not urlsplit(text).hostname:
            raise OptOutError(f"URL prefix without a host: {text!r}")
        return OptOutEntry("url_prefix", canonical_url(text, prefix=True))
    host = text.lower().rstrip(".")
    if not host or "/" in host or " " in host or "." not in host:
        raise OptOutError(f"not a domain, URL prefix or sha256:/pdq: hash: {text!r}")
    return OptOutEntry("domain", host)


@dataclass
class OptOutList:
    entries: list[OptOutEntry] = field(default_factory=list)
    _matcher: NeverCollect | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, *, source: str = "<list>") -> "OptOutList":
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if line:
                try:
                    entries.append(parse_entry(line))
                except OptOutError as exc:
                    raise OptOutError(f"{source}:{number}: {exc}") from None
        return cls(entries)

    def extend(self, other: "OptOutList") -> None:
        known = set(self.entries)
        self.entries += [e for e in other.entries if e not in known]
        self._matcher = None

    @property
    def matcher(self) -> NeverCollect:
        if self._matcher is None:
            self._matcher = NeverCollect(Entry(e.kind, e.value) for e in self.entries)
        return self._matcher

    def check_url(self, url: str) -> Decision:
        kind = self.matcher.url_match(url)
        return Decision.block(f"optout_{kind}") if kind else Decision.allow("optout:none")

    @property
    def has_pdq(self) -> bool:
        """Whether `check_image` needs the image's PDQ hash (a caller may have to look it up)."""
        return self.matcher.has_kind("pdq")

    def check_image(self, *, sha256: str, pdq: bytes | None) -> Decision:
        """`pdq` None: not known, so only sha256 entries can match (pass it whenever `has_pdq`)."""
        kind = self.matcher.image_match(sha256=sha256, pdq=pdq)
        return Decision.block(f"optout_{kind}") if kind else Decision.allow("optout:none")
