"""The one shape every policy answer takes."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Short, slash-free token for blocks (it becomes a stats key: policy/blocked/<reason>),
    # or a provenance note for allows (it is written to the sighting's `policy` column).
    reason: str

    @classmethod
    def allow(cls, reason: str) -> "Decision":
        return cls(True, reason)

    @classmethod
    def block(cls, reason: str) -> "Decision":
        return cls(False, reason)
