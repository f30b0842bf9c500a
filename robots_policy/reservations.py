"""Machine-readable reservations a page or image carries itself: robots directives in
<meta> and X-Robots-Tag, TDMRep's tdm-reservation, and the aipref Content-Usage header."""

import re
from collections.abc import Iterable

from robots_policy.decision import Decision

# Directives that keep a page's images (or an image) out of the gallery.
EXCLUDING_DIRECTIVES = ("none", "noai", "noimageai", "noindex", "noimageindex")

# A "bot: directive" prefix inside X-Robots-Tag: the prefix is a token, not a known directive.
_SCOPED = re.compile(r"^\s*([A-Za-z][\w.-]*)\s*:\s*(.*)$")


def robots_directives(values: Iterable[str], *, token: str) -> set[str]:
    """Directives that apply to us from robots meta contents or X-Robots-Tag values.

    Unscoped ("noai, noindex") and our-token-scoped ("gallery-crawler: noai") directives
    apply; those scoped to another crawler ("googlebot: noindex") do not.
    """
    found: set[str] = set()
    for value in values:
        scope = None
        match = _SCOPED.match(value)
        if match and match.group(1).lower() not in _KNOWN_WITH_VALUES:
            scope, value = match.group(1).lower(), match.group(2)
        if scope is not None and scope != token.lower():
            continue
        found.update(part.strip().lower() for part in value.split(",") if part.strip())
    return found


# Directives that themselves take "name: value" (so "max-snippet: 20" is not a scope).
_KNOWN_WITH_VALUES = {"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"}


def content_usage_denies_training(value: str) -> bool:
    """Does an aipref Content-Usage value (e.g. "train-ai=n") reserve AI training?"""
    prefs = {}
    for part in value.split(","):
        key, _, answer = part.strip().partition("=")
        prefs[key.strip().lower()] = answer.strip().strip('"').lower()
    return prefs.get("train-ai") == "n"


def robots_content_usage(robots_txt: str) -> list[tuple[str, str]]:
    """The aipref "Content-Usage" rules of a robots.txt body, as (path prefix, value) pairs.

    "Content-Usage: train-ai=n" covers the whole site; "Content-Usage: /photos/ train-ai=n"
    covers a path. Honoured in every group: a reservation is not something to evade by agent.
    """
    rules = []
    for line in robots_txt.splitlines():
        field, sep, value = line.split("#", 1)[0].partition(":")
        if not sep or field.strip().lower() != "content-usage":
            continue
        value = value.strip()
        path, _, rest = value.partition(" ")
        if path.startswith("/"):
            rules.append((path, rest.strip()))
        else:
            rules.append(("/", value))
    return rules


def check_robots_content_usage(rules: list[tuple[str, str]], path: str) -> Decision:
    """The longest matching Content-Usage rule decides."""
    matching = [rule for rule in rules if path.startswith(rule[0])]
    if matching and content_usage_denies_training(max(matching, key=lambda r: len(r[0]))[1]):
        return Decision.block("robots_content_usage")
    return Decision.allow("content-usage:none")


def check_reservations(
    *,
    where: str,
    robots_values: Iterable[str] = (),
    tdm_reservation: str | None = None,
    content_usage: Iterable[str] = (),
    token: str,
) -> Decision:
    """Decide from the reservations found in one place (`where`: "meta" or "header").

    Reasons name the place and the signal, e.g. "meta_noimageai", "header_tdm_reservation".
    """
    directives = robots_directives(robots_values, token=token)
    for directive in EXCLUDING_DIRECTIVES:
        if directive in directives:
            return Decision.block(f"{where}_{directive}")
    if tdm_reservation is not None and tdm_reservation.strip() == "1":
        return Decision.block(f"{where}_tdm_reservation")
    if any(content_usage_denies_training(value) for value in content_usage):
        return Decision.block(f"{where}_content_usage")
    tdm = "unset" if tdm_reservation is None else tdm_reservation.strip()
    return Decision.allow(f"{where}:none,tdm={tdm}")
