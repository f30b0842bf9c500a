"""The checks a request must pass before it is sent, declared once, in the order they run.

Two adapters walk this list: SitePolicyMiddleware for every request Scrapy sends (redirects
included: a redirect is a new request), and the browser's request guard (crawler/render/guard.py)
for every request a rendered page makes. Each check returns robots_policy Decisions; the first
block ends the walk and is reported through `report_block` (crawler/signals.py), the one place
blocks are counted and logged. Allowed decisions are kept as the request's provenance trail
(the sighting's `policy` column).

Cheap before expensive: the checks that only read memory (tombstones, opt-outs) come before the
DNS lookup, and a URL a removal or a steward named is never even resolved.
"""

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crawler import USER_AGENT_TOKEN
from crawler.shared_policy import SharedPolicy
from crawler.signals import TOMBSTONE, report_block
from robots_policy import Decision, check_addresses
from robots_policy.site import SitePolicy

# A request to an origin whose site files are not known and cannot be waited for (the
# browser's sub-requests to a third-party host): refused, on the safe side.
ORIGIN_UNKNOWN = "origin_unknown"


@dataclass(frozen=True)
class CheckContext:
    """What the checks read, supplied by the adapter that walks them."""

    policy: SharedPolicy
    allow_loopback: bool
    # The origin's parsed site files (robots.txt, ai.txt, TDMRep) for a URL: the middleware
    # fetches them first; the browser guard only has those already read (None: unknown).
    site_policy: Callable[[str], Awaitable[SitePolicy | None]]


@dataclass(frozen=True)
class RequestCheck:
    name: str
    decide: Callable[[str, CheckContext], Awaitable[list[Decision]]]
    # Site files (robots.txt, ai.txt, tdmrep.json) are the rules themselves, never content:
    # fetched even under a tombstone or an opt-out, but never from a forbidden address.
    site_files_too: bool = False


@dataclass(frozen=True)
class CheckResult:
    blocked: Decision | None  # the first block, or None when every check allowed the request
    passed: list[str] = field(default_factory=list)  # the allowed decisions' reasons, in order

    @property
    def allowed(self) -> bool:
        return self.blocked is None


async def _scheme(url: str, ctx: CheckContext) -> list[Decision]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [Decision.block("bad_scheme")]
    return []


async def _tombstones(url: str, ctx: CheckContext) -> list[Decision]:
    return [Decision.block(TOMBSTONE)] if ctx.policy.tombstones.blocks_url(url) else []


async def _optouts(url: str, ctx: CheckContext) -> list[Decision]:
    return [ctx.policy.optouts.check_url(url)]


async def _addresses(url: str, ctx: CheckContext) -> list[Decision]:
    parts = urlsplit(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError):
        infos = []
    # The connection resolves the name again; crawler/resolver.py checks that answer too (a
    # browser's own lookup is a known gap: DNS rebinding against a rendered page).
    return [check_addresses({info[4][0] for info in infos}, allow_loopback=ctx.allow_loopback)]


async def _site_files(url: str, ctx: CheckContext) -> list[Decision]:
    site = await ctx.site_policy(url)
    if site is None:
        return [Decision.block(ORIGIN_UNKNOWN)]
    return site.before_request(url, USER_AGENT_TOKEN)


# The one ordered list. A new request check is one entry here.
REQUEST_CHECKS: tuple[RequestCheck, ...] = (
    RequestCheck("scheme", _scheme, site_files_too=True),
    RequestCheck("tombstones", _tombstones),
    RequestCheck("optouts", _optouts),
    RequestCheck("addresses", _addresses, site_files_too=True),
    RequestCheck("site_files", _site_files),
)


async def run_checks(url: str, ctx: CheckContext, *, site_file: bool = False) -> CheckResult:
    """Walk REQUEST_CHECKS until the first block; nothing is reported here."""
    passed: list[str] = []
    for check in REQUEST_CHECKS:
        if site_file and not check.site_files_too:
            continue
        for decision in await check.decide(url, ctx):
            if not decision.allowed:
                return CheckResult(decision, passed)
            passed.append(decision.reason)
    return CheckResult(None, passed)


async def check_request(crawler, url: str, ctx: CheckContext, *, page_url: str | None, site_file: bool = False) -> CheckResult:
    """Walk the checks and report a block (counted and logged once, by the exclusion log)."""
    result = await run_checks(url, ctx, site_file=site_file)
    if result.blocked is not None:
        report_block(crawler, url=url, reason=result.blocked.reason, page_url=page_url)
    return result
