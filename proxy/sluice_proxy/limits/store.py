"""What a limit store does; Redis (shared by replicas) and local (one process) implement it."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from .checks import Check


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class Decision:
    rejected: Check | None
    rejected_index: int
    """Index of ``rejected`` in the checks (-1 when admitted)."""
    now_ms: int
    used: tuple[int, ...]
    """Per check, what was already used before this request."""
    reset_ms: tuple[int, ...]
    """Per check, milliseconds until its oldest charge leaves the window (budget: period end)."""

    def __init__(
        self,
        rejected: Check | None,
        rejected_index: int,
        now_ms: int,
        used: tuple[int, ...],
        reset_ms: tuple[int, ...],
    ) -> None:
        self.rejected = rejected
        self.rejected_index = rejected_index
        self.now_ms = now_ms
        self.used = used
        self.reset_ms = reset_ms


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class Settlement:
    """Everything a store needs to settle one admission; replayable after an outage."""

    id: str
    admitted_ms: int
    delta_tokens: int
    """Real tokens minus the tokens reserved at admission."""
    token_keys: list[str]
    slot_keys: list[str]
    usage_keys: list[tuple[str, int]]
    """Usage hashes to add to, each with the Unix second it expires at."""
    spend_micro: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int

    def __init__(
        self,
        id: str,
        admitted_ms: int,
        delta_tokens: int,
        token_keys: list[str] | None = None,
        slot_keys: list[str] | None = None,
        usage_keys: list[tuple[str, int]] | None = None,
        spend_micro: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
    ) -> None:
        self.id = id
        self.admitted_ms = admitted_ms
        self.delta_tokens = delta_tokens
        self.token_keys = [] if token_keys is None else token_keys
        self.slot_keys = [] if slot_keys is None else slot_keys
        self.usage_keys = [] if usage_keys is None else usage_keys
        self.spend_micro = spend_micro
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cached_input_tokens = cached_input_tokens


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
