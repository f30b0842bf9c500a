"""Spawning-style /ai.txt: robots.txt syntax about AI use of media, often with bare
extension patterns ("Disallow: *.jpg") that robots.txt parsers would not match."""

from dataclasses import dataclass

from robots_policy.decision import Decision
from robots_policy.robots import MAX_ROBOTS_BYTES, RobotsRules

_RULE_FIELDS = ("allow", "disallow")


@dataclass(frozen=True)
class AiTxt:
    rules: RobotsRules | None  # None: no ai.txt (any non-2xx or unreachable): nothing reserved

    @classmethod
    def from_fetch(cls, *, status: int | None, body: bytes) -> "AiTxt":
        # Unlike robots.txt, ai.txt is an opt-out: its absence (or a failing server) reserves nothing.
        if status is None or not 200 <= status < 300:
            return cls(None)
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        return cls(RobotsRules.parse(_normalise(text), source="ai.txt"))

    def decide(self, url: str, user_agent: str) -> Decision:
        if self.rules is None:
            return Decision.allow("aitxt:none")
        if self.rules.allows(url, user_agent):
            return Decision.allow("aitxt:allow")
        return Decision.block("aitxt")


def _normalise(text: str) -> str:
    """Give bare patterns ("*.jpg", "photos/") the leading "/" robots.txt matching expects."""
    lines = []
    for line in text.splitlines():
        field, sep, value = line.partition(":")
        value = value.strip()
        if sep and field.strip().lower() in _RULE_FIELDS and value and not value.startswith("/"):
            line = f"{field.strip()}: /{value}"
        lines.append(line)
    return "\n".join(lines)
