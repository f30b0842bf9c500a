"""TDMRep site policy (/.well-known/tdmrep.json, W3C CG report): which locations reserve
text-and-data-mining rights. A tdm-reservation header or meta on the resource overrides it."""

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from robots_policy.decision import Decision

MAX_TDMREP_BYTES = 256 * 1024
MAX_RULES = 10_000


@dataclass(frozen=True)
class TdmRule:
    pattern: re.Pattern
    location: str
    reserved: bool
    policy: str | None


@dataclass(frozen=True)
class TdmRep:
    rules: tuple[TdmRule, ...]
    problem: str | None = None  # why the file was ignored, for the log

    @classmethod
    def parse(cls, body: bytes) -> "TdmRep":
        """Parse tdmrep.json; a missing, oversized or malformed file reserves nothing."""
        if len(body) > MAX_TDMREP_BYTES:
            return cls((), problem="too large")
        try:
            entries = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return cls((), problem=f"not JSON: {exc}")
        if not isinstance(entries, list):
            return cls((), problem="not a JSON array")
        rules = []
        for entry in entries[:MAX_RULES]:
            if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
                continue
            reservation = entry.get("tdm-reservation")
            policy = entry.get("tdm-policy")
            rules.append(
                TdmRule(
                    pattern=_location_pattern(entry["location"]),
                    location=entry["location"],
                    reserved=reservation in (1, "1"),
                    policy=policy if isinstance(policy, str) else None,
                )
            )
        return cls(tuple(rules))

    def decide(self, url: str) -> Decision:
        """First matching location wins (TDMRep §4.3)."""
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for rule in self.rules:
            if rule.pattern.match(path):
                if rule.reserved:
                    return Decision.block("tdmrep_reservation")
                return Decision.allow(f"tdmrep:allow({rule.location})")
        return Decision.allow("tdmrep:none")


def _location_pattern(location: str) -> re.Pattern:
    # Locations are path patterns in robots.txt style: "*" any run of characters, a final
    # "$" anchors the end; otherwise a prefix match.
    if "://" in location:
        location = urlsplit(location).path or "/"
    anchored = location.endswith("$")
    body = location[:-1] if anchored else location
    if not body.startswith("/") and not body.startswith("*"):
        body = "/" + body
    regex = ".*".join(re.escape(piece) for piece in body.split("*"))
    return re.compile(regex + ("$" if anchored else ""))
