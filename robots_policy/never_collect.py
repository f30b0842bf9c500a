"""Never-collect matching: the one URL canonicalization, and the one matcher that removal
tombstones and steward opt-out lists both answer through (url, url_prefix, domain, hashes).
"""

import re
from urllib.parse import urlsplit, urlunsplit

from w3lib.url import safe_url_string

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def canonical_url(url: str, *, prefix: bool = False) -> str:
    """The form every never-collect URL is compared in: percent-encoded the way a request is
    sent (w3lib's safe_url_string, as Scrapy does: `ä b` becomes `%C3%A4%20b`, a non-ASCII host
    its IDNA form), scheme and host lower-cased, a default port and the fragment dropped, escapes
    upper-cased. The query is kept as written: `?a=1&b=2` and `?b=2&a=1` may be different pages,
    and a tombstone must not reach further than asked. A prefix keeps an empty path empty."""
    parts = urlsplit(safe_url_string(url.strip()))
    scheme = parts.scheme.lower()
    host = canonical_host(parts.hostname or "")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = _upper_escapes(parts.path) or ("" if prefix else "/")
    return urlunsplit((scheme, netloc, path, _upper_escapes(parts.query), ""))


def canonical_host(host: str) -> str:
    """A host name as entries name it: lower case, no trailing dot, no IPv6 brackets."""
    return host.strip().lower().rstrip(".").strip("[]")


def url_host(url: str) -> str:
    """The canonical host of a URL (a non-ASCII name in its IDNA form)."""
    return canonical_host(urlsplit(safe_url_string(url.strip())).hostname or "")


def _upper_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda m: m.group(0).upper(), text) if "%" in text else text
