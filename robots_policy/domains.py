"""Registrable domains (eTLD+1), from the public suffix list snapshot bundled with tldextract."""

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

import tldextract

# No suffix_list_urls: never fetch the list at run time, use the bundled snapshot.
_extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=65536)
def registrable_domain(host_or_url: str) -> str:
    host = urlsplit(host_or_url).hostname if "//" in host_or_url else host_or_url
    host = (host or "").lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return _extract(host).top_domain_under_public_suffix or host


# The private section too: github.io or blogspot.com is a suffix under which thousands of
# unrelated owners register their own names, so a rule over all of it is a rule over them all.
_extract_private = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


def public_suffix_of(domain: str) -> str | None:
    """`domain` itself when it is a public suffix (ICANN or private section of the list), else None."""
    host = domain.lower().strip().rstrip(".")
    parts = _extract_private(host)
    return host if host and not parts.domain and parts.suffix == host else None
