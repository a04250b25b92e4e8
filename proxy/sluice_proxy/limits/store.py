"""What a limit store does; Redis (shared by replicas) and local (one process) implement it."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

from .checks import Check


@dataclass(slots=True)  # not frozen: its __init__ would make a call per field, per request
class Decision:
    rejected: Check | None
    rejected_index: int
    """Index of ``rejected`` in the checks (-1 when admitted)."""
    now_ms: int
    used: tuple[int, ...]
    """Per check, what was already used before this request."""
    reset_ms: tuple[int, ...]
    """Per check, milliseconds until its oldest charge leaves the window (budget: period end)."""


@dataclass(slots=True)
class Settlement:
    """Everything a store needs to settle one admission; replayable after an outage."""

    id: str
    admitted_ms: int
    delta_tokens: int
    """Real tokens minus the tokens reserved at admission."""
    token_keys: list[str] = field(default_factory=list)
    slot_keys: list[str] = field(default_factory=list)
    usage_keys: list[tuple[str, int]] = field(default_factory=list)
    """Usage hashes to add to, each with the Unix second it expires at."""
    spend_micro: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0


class Store(Protocol):
    def admit(
        self, checks: list[Check], admission_id: str, reserved_tokens: int, *, dry: bool = False
    ) -> Awaitable[Decision]:
        """Charge every check or none; ``dry`` only reports the current state."""
        ...

    def settle(self, settlement: Settlement) -> Awaitable[list[int]]:
        """The new spend (micro-dollars) of each usage hash."""
        ...

    async def read_usage(self, keys: list[str]) -> list[dict[str, int]]: ...


def decision(checks: list[Check], rejected: int, now_ms: int, pairs: list[int]) -> Decision:
    """A Decision from the flat ``used, reset`` pairs both stores produce."""
    return Decision(
        rejected=checks[rejected - 1] if rejected else None,
        rejected_index=rejected - 1,
        now_ms=now_ms,
        used=tuple(pairs[0::2]),
        reset_ms=tuple(pairs[1::2]),
    )
