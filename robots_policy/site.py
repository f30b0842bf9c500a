"""Everything one origin's site files say, combined: robots.txt (with its aipref Content-Usage
rules), ai.txt and TDMRep. Built from raw fetch outcomes (CachedFetch), so a cache can hold them."""

from dataclasses import dataclass
from urllib.parse import urlsplit

from robots_policy.aitxt import AiTxt
from robots_policy.cache import CachedFetch
from robots_policy.decision import Decision
from robots_policy.reservations import check_reservations, check_robots_content_usage, robots_content_usage
from robots_policy.robots import MAX_ROBOTS_BYTES, RobotsRules, sitemap_urls
from robots_policy.tdmrep import TdmRep

# The files every origin is asked for, and how many bytes of each we read (RFC 9309: >= 500 KiB).
SITE_FILES = {
    "robots.txt": ("/robots.txt", MAX_ROBOTS_BYTES),
    "ai.txt": ("/ai.txt", MAX_ROBOTS_BYTES),
    "tdmrep.json": ("/.well-known/tdmrep.json", 256 * 1024),
}


@dataclass(frozen=True)
class SitePolicy:
    robots: RobotsRules
    content_usage: list[tuple[str, str]]
    ai_txt: AiTxt
    tdmrep: TdmRep
    sitemaps: tuple[str, ...] = ()  # robots.txt's Sitemap: lines, as written

    @classmethod
    def from_fetches(cls, *, robots: CachedFetch, ai_txt: CachedFetch, tdmrep: CachedFetch) -> "SitePolicy":
        ok = robots.status is not None and 200 <= robots.status < 300
        robots_text = robots.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace") if ok else ""
        tdm_ok = tdmrep.status is not None and 200 <= tdmrep.status < 300
        return cls(
            robots=RobotsRules.from_fetch(status=robots.status, body=robots.body),
            content_usage=robots_content_usage(robots_text),
            ai_txt=AiTxt.from_fetch(status=ai_txt.status, body=ai_txt.body),
            tdmrep=TdmRep.parse(tdmrep.body) if tdm_ok else TdmRep(()),
            sitemaps=tuple(sitemap_urls(robots_text)) if robots_text else (),
        )

    def before_request(self, url: str, token: str) -> list[Decision]:
        """The checks that decide whether `url` may be requested at all; stops at the first block."""
        path = urlsplit(url).path or "/"
        decisions = []
        for decide in (
            lambda: self.robots.decide(url, token),
            lambda: check_robots_content_usage(self.content_usage, path),
            lambda: self.ai_txt.decide(url, token),
        ):
            decisions.append(decide())
            if not decisions[-1].allowed:
                break
        return decisions

    def after_response(
        self,
        url: str,
        *,
        headers: dict[str, list[str]],
        meta: dict[str, list[str]],
        token: str,
    ) -> list[Decision]:
        """Reservations the resource carries itself (headers, and <meta> for pages), then TDMRep.

        `headers` and `meta` map lower-case names to all their values. A tdm-reservation
        header or meta overrides tdmrep.json (TDMRep §3); header wins over meta.
        """
        decisions = [
            check_reservations(
                where="header",
                robots_values=headers.get("x-robots-tag", []),
                tdm_reservation=_first(headers.get("tdm-reservation")),
                content_usage=headers.get("content-usage", []),
                token=token,
            ),
            check_reservations(
                where="meta",
                robots_values=meta.get("robots", []) + meta.get(token.lower(), []),
                tdm_reservation=_first(meta.get("tdm-reservation")),
                token=token,
            ),
        ]
        stated = _first(headers.get("tdm-reservation")) or _first(meta.get("tdm-reservation"))
        if stated is None:
            decisions.append(self.tdmrep.decide(url))
        blocked = [d for d in decisions if not d.allowed]
        return blocked[:1] if blocked else decisions


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None
