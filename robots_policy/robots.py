"""robots.txt (RFC 9309): how a fetch outcome becomes rules, and what the rules say about a URL."""

from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

from robots_policy.decision import Decision

# RFC 9309 §2.5: parsers must handle at least 500 KiB; anything past the limit is ignored.
MAX_ROBOTS_BYTES = 512 * 1024


def is_allowed_by_robots(robots_txt: str, user_agent: str, url: str) -> bool:
    """May `user_agent` fetch `url` under this robots.txt body?"""
    return RobotsRules.parse(robots_txt).allows(url, user_agent)


@dataclass(frozen=True)
class RobotsRules:
    """The rules for one origin: parsed rules, or a blanket allow/deny with the RFC's reason."""

    parser: Protego | None
    blanket_allow: bool
    source: str  # "200", "4xx", "5xx", "unreachable": how the rules were obtained

    @classmethod
    def parse(cls, body: str, source: str = "200") -> "RobotsRules":
        return cls(parser=Protego.parse(body[:MAX_ROBOTS_BYTES]), blanket_allow=True, source=source)

    @classmethod
    def from_fetch(cls, *, status: int | None, body: bytes) -> "RobotsRules":
        """Rules from a robots.txt fetch outcome; `status` None means it could not be fetched.

        RFC 9309 §2.3.1: 2xx is parsed, 4xx ("unavailable") allows everything,
        5xx and network errors ("unreachable") disallow everything.
        """
        if status is None:
            return cls(parser=None, blanket_allow=False, source="unreachable")
        if 200 <= status < 300:
            text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
            return cls.parse(text)
        if 400 <= status < 500:
            return cls(parser=None, blanket_allow=True, source="4xx")
        return cls(parser=None, blanket_allow=False, source="5xx")

    def allows(self, url: str, user_agent: str) -> bool:
        if urlsplit(url).path == "/robots.txt":
            return True
        if self.parser is None:
            return self.blanket_allow
        return self.parser.can_fetch(url, user_agent)

    def decide(self, url: str, user_agent: str) -> Decision:
        if self.allows(url, user_agent):
            return Decision.allow(f"robots:allow({self.source})")
        if self.parser is None:
            return Decision.block(f"robots_{self.source}")
        return Decision.block("robots")

    def crawl_delay(self, user_agent: str) -> float | None:
        return self.parser.crawl_delay(user_agent) if self.parser else None
