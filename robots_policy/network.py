"""Network safety: which resolved addresses the crawler may connect to."""

import ipaddress
from collections.abc import Iterable

from robots_policy.decision import Decision


def check_addresses(addresses: Iterable[str], *, allow_loopback: bool) -> Decision:
    """Allow only if every address a host resolves to is public (or loopback, when opened).

    All addresses are checked, not just the first, because the connection may use any of them.
    Link-local (cloud metadata endpoints) is never opened.
    """
    addresses = list(addresses)
    if not addresses:
        return Decision.block("unresolvable")
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            if not allow_loopback:
                return Decision.block("address_loopback")
            continue
        if ip.is_link_local:
            return Decision.block("address_link_local")
        if ip.is_multicast:
            return Decision.block("address_multicast")
        if ip.is_unspecified or ip.is_reserved:
            return Decision.block("address_reserved")
        if ip.is_private or not ip.is_global:
            return Decision.block("address_private")
    return Decision.allow("net:public" if not allow_loopback else "net:ok")
