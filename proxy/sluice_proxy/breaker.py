"""A circuit breaker per backend: skip one that keeps failing, probe it after a cooldown."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float = 0.0
    state: State = State.CLOSED
    probing: bool = False


class Breakers:
    """Consecutive-failure breakers keyed by backend; the clock is injectable for tests."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State], None] | None = None,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._on_change = on_change

    def state(self, key: str) -> State:
        circuit = self._circuits.get(key)
        if circuit is None:
            return State.CLOSED
        if circuit.state is State.OPEN and self._clock() - circuit.opened_at >= self.cooldown:
            self._set(key, circuit, State.HALF_OPEN)
        return circuit.state

    def allow(self, key: str) -> bool:
        """Whether a request may go to ``key`` now; in half-open only one probe at a time."""
        state = self.state(key)
        if state is State.CLOSED:
            return True
        if state is State.OPEN:
            return False
        circuit = self._circuits[key]
        if circuit.probing:
            return False
        circuit.probing = True
        return True

    def success(self, key: str) -> None:
        circuit = self._circuits.get(key)
        if circuit is None:
            return
        circuit.failures = 0
        circuit.probing = False
        if circuit.state is not State.CLOSED:
            self._set(key, circuit, State.CLOSED)

    def failure(self, key: str) -> None:
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        circuit.probing = False
        if circuit.state is State.HALF_OPEN or circuit.failures >= self.threshold:
            circuit.opened_at = self._clock()
            self._set(key, circuit, State.OPEN)

    def _set(self, key: str, circuit: _Circuit, state: State) -> None:
        circuit.state = state
        if self._on_change is not None:
            self._on_change(key, state)
