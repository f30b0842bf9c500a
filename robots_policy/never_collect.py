"""Never-collect matching: the one URL canonicalization, and the one matcher that removal
tombstones and steward opt-out lists both answer through (url, url_prefix, domain, and image
hashes sha256, pdq, phash). Indexed, so a check stays cheap with 100,000 entries
(benchmarks/never_collect.py).
"""

import ipaddress
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from w3lib.url import safe_url_string

from robots_policy.match_thresholds import MATCH_DISTANCE

URL_KINDS = ("url", "url_prefix", "domain")
HASH_KINDS = ("sha256", "pdq", "phash")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
# URLs safe_url_string would leave as they are (checked against it in tests/robots_policy/
# test_never_collect.py): most URLs a crawl checks, and it saves most of a check's time.
_ALREADY_SAFE = re.compile(
    r"https?://[a-z0-9.-]+(?::[0-9]{1,4})?(?:/[a-z0-9\-._~!$&'()*+,;=:@/]*(?:\?[a-z0-9\-._~!$&()*+,;=:@/?]+)?)?\Z",
    re.IGNORECASE,
)


def canonical_url(url: str, *, prefix: bool = False) -> str:
    """The form every never-collect URL is compared in: percent-encoded the way a request is
    sent (w3lib's safe_url_string, as Scrapy does: `ä b` becomes `%C3%A4%20b`, a non-ASCII host
    its IDNA form), scheme and host lower-cased, a default port and the fragment dropped, escapes
    upper-cased. The query is kept as written (not w3lib's canonicalize_url, which sorts it):
    `?a=1&b=2` and `?b=2&a=1` may be different pages, and a tombstone must not reach further
    than asked. A prefix keeps an empty path empty."""
    parts = urlsplit(_safe(url.strip()))
    scheme = parts.scheme.lower()
    host = canonical_host(parts.hostname or "")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = parts.netloc.rsplit(":", 1)[-1]  # not a number: kept as written
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = _upper_escapes(parts.path) or ("" if prefix else "/")
    return urlunsplit((scheme, netloc, path, _upper_escapes(parts.query), ""))


def canonical_host(host: str) -> str:
    """A host name as entries name it: lower case, IDNA, no trailing dot, no IPv6 brackets."""
    host = host.strip().lower().rstrip(".").strip("[]")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # not a valid name: compared as written, so it matches only itself
    return host


def url_host(url: str) -> str:
    """The canonical host of a URL."""
    return canonical_host(urlsplit(_safe(url.strip())).hostname or "")


def _as_canonical(url: str, *, prefix: bool) -> str:
    """canonical_url, skipping the work for a value already in canonical form: entries mostly
    are (tombstones and opt-out entries are written canonical), and a gallery may hold many."""
    if _ALREADY_SAFE.match(url):
        scheme, _, rest = url.partition("://")
        netloc, slash, _ = rest.partition("/")
        host, _, port = netloc.partition(":")
        if (
            scheme in _DEFAULT_PORTS
            and netloc == netloc.lower()
            and not host.endswith(".")
            and not port.startswith("0")
            and (not port or int(port) != _DEFAULT_PORTS[scheme])
            and (prefix or slash)
        ):
            return url
    return canonical_url(url, prefix=prefix)


def _host_of_canonical(url: str) -> str:
    """The host of a URL canonical_url made, without parsing it again."""
    netloc = url.split("/", 3)[2].rsplit("@", 1)[-1] if url.count("/") >= 2 else ""
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")]
    return netloc.split(":", 1)[0]


def _safe(url: str) -> str:
    if _ALREADY_SAFE.match(url):
        return url
    try:
        return safe_url_string(url)
    except ValueError:  # a port out of range: compared as written, so it matches only itself
        return url


def _upper_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda m: m.group(0).upper(), text) if "%" in text else text


def _is_ip(host: str) -> bool:
    if not host or not (host[-1].isdigit() or ":" in host):
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Entry:
    """One thing never to collect. `value`: a URL, URL prefix or host name (any spelling; the
    matcher canonicalizes it), or lowercase hex for a hash."""

    kind: str  # one of URL_KINDS or HASH_KINDS
    value: str
    # Hash entries sharing a group must all match together (the pHash and PDQ of one picture,
    # from a removal by image): either alone is too loose and would block other pictures.
    match_group: str | None = None


class _HashSet:
    """Perceptual hashes of one kind as 64-bit words, for a vectorized Hamming scan."""

    def __init__(self, values: list[str]):
        raw = b"".join(bytes.fromhex(v) for v in values)
        width = len(bytes.fromhex(values[0])) // 8 if values else 1
        self.words = np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(values), width)

    def within(self, value: bytes, limit: int) -> np.ndarray:
        query = np.frombuffer(value, dtype=">u8").astype(np.uint64)
        return np.bitwise_count(self.words ^ query).sum(axis=1, dtype=np.int32) <= limit


class NeverCollect:
    """The matcher: is this URL, or this picture, something that must never be collected?

    URLs: exact URLs in a set, URL prefixes by bisection over a sorted prefix-free list, domains
    by walking up the host's labels (`a.b.example.org`, `b.example.org`, `example.org`): each
    check costs the same with 10 entries or 100,000. Hashes: sha256 in a set, pHash and PDQ by
    one vectorized Hamming scan per kind, at the distances of robots_policy/match_thresholds.py.
    """

    def __init__(self, entries: Iterable[Entry] = ()):
        urls, prefixes, domains, sha256 = set(), set(), set(), set()
        single: dict[str, list[str]] = {"pdq": [], "phash": []}
        grouped: dict[str, list[tuple[str, str]]] = {"pdq": [], "phash": []}
        for entry in entries:
            if entry.kind == "url":
                urls.add(_as_canonical(entry.value, prefix=False))
            elif entry.kind == "url_prefix":
                prefixes.add(_as_canonical(entry.value, prefix=True))
            elif entry.kind == "domain":
                domains.add(canonical_host(entry.value))
            elif entry.kind == "sha256":
                sha256.add(entry.value.lower())
            elif entry.kind in single:
                if entry.match_group:
                    grouped[entry.kind].append((entry.match_group, entry.value.lower()))
                else:
                    single[entry.kind].append(entry.value.lower())
            else:
                raise ValueError(f"unknown never-collect entry kind {entry.kind!r}")
        self.urls = frozenset(urls)
        self.domains = frozenset(domains)
        self.sha256 = frozenset(sha256)
        # A prefix that has a shorter prefix in the list adds nothing; without them, the only
        # candidate for a URL is the greatest prefix sorting at or before it.
        kept: list[str] = []
        for prefix in sorted(prefixes):
            if not (kept and prefix.startswith(kept[-1])):
                kept.append(prefix)
        self.prefixes: tuple[str, ...] = tuple(kept)
        # Hosts that url and url_prefix entries name: lets a bulk reader narrow rows by host first.
        self.url_hosts = frozenset(_host_of_canonical(u) for u in (*self.urls, *self.prefixes))
        self._single = {kind: _HashSet(values) for kind, values in single.items() if values}
        names = sorted({group for rows in grouped.values() for group, _ in rows})
        number = {name: i for i, name in enumerate(names)}
        self._grouped = {
            kind: (_HashSet([v for _, v in rows]), np.array([number[g] for g, _ in rows], dtype=np.int64))
            for kind, rows in grouped.items()
            if rows
        }
        self._group_sizes = np.bincount(
            np.concatenate([ids for _, ids in self._grouped.values()]) if self._grouped else np.empty(0, np.int64),
            minlength=len(names),
        )
        self._size = len(urls) + len(prefixes) + len(domains) + len(sha256)
        self._size += sum(len(v) for v in single.values()) + sum(len(v) for v in grouped.values())

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    @property
    def has_url_entries(self) -> bool:
        return bool(self.urls or self.prefixes or self.domains)

    def has_kind(self, kind: str) -> bool:
        """Whether any entry needs this hash kind (a caller may have to compute or look it up)."""
        return kind in self._single or kind in self._grouped or (kind == "sha256" and bool(self.sha256))

    # -- URLs -------------------------------------------------------------------------------

    def url_match(self, url: str) -> str | None:
        """The kind of entry the URL falls under (url, url_prefix, domain), or None."""
        if not (self.urls or self.prefixes or self.domains):
            return None
        canonical = canonical_url(url)
        if canonical in self.urls:
            return "url"
        if self.prefixes:
            at = bisect_right(self.prefixes, canonical) - 1
            if at >= 0 and canonical.startswith(self.prefixes[at]):
                return "url_prefix"
        if self.domains and self.domain_match(_host_of_canonical(canonical)):
            return "domain"
        return None

    def blocks_url(self, url: str) -> bool:
        return self.url_match(url) is not None

    def domain_match(self, host: str) -> bool:
        """Whether a canonical host is a domain entry or under one (its subdomains included)."""
        if not self.domains or not host:
            return False
        if host in self.domains:
            return True
        if _is_ip(host):
            return False  # 10.0.0.1 is not "under" 0.0.1
        dot = host.find(".")
        while dot != -1:
            if host[dot + 1 :] in self.domains:
                return True
            dot = host.find(".", dot + 1)
        return False

    # -- pictures ---------------------------------------------------------------------------

    def image_match(self, *, sha256: str, phash: bytes | None = None, pdq: bytes | None = None) -> str | None:
        """The kind of entry the picture falls under (sha256, pdq, phash, or pdq+phash for a
        group), or None. A hash passed as None is not known: entries needing it cannot match."""
        if sha256 in self.sha256:
            return "sha256"
        given = {"pdq": pdq, "phash": phash}
        for kind, hashes in self._single.items():
            if given[kind] is not None and hashes.within(given[kind], MATCH_DISTANCE[kind]).any():
                return kind
        if self._grouped:
            matched = np.zeros(len(self._group_sizes), dtype=np.int64)
            for kind, (hashes, ids) in self._grouped.items():
                if given[kind] is not None:
                    matched += np.bincount(ids[hashes.within(given[kind], MATCH_DISTANCE[kind])], minlength=len(matched))
            if (matched == self._group_sizes).any():
                return "+".join(sorted(self._grouped))
        return None
