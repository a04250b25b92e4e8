"""Deadlines checked by one periodic sweep instead of a timer each.

Arming and cancelling an event-loop timer costs about 2 µs, and the hot path would arm
several per request (the upstream's head, every body chunk, every Redis batch). A sweep
every ``tick`` of the deadlines in flight costs a fraction of that; a deadline then fires up
to one tick late, which is why the tick is a small share of the timeouts it serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlines:
    """Keys with a deadline (``loop.time()`` clock) and what to call when it passes."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, tick: float, message: str = "deadline passed"
    ) -> None:
        self.loop = loop
        self.tick = tick
        self.message = message
        """What a :meth:`wait` past its deadline raises TimeoutError with."""
        self._pending: dict[Hashable, tuple[float, Callable[[], None]]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, key: Hashable, deadline: float, expire: Callable[[], None]) -> None:
        self._pending[key] = (deadline, expire)
        if self._timer is None:
            self._timer = self.loop.call_later(self.tick, self._sweep)

    def discard(self, key: Hashable) -> None:
        self._pending.pop(key, None)

    async def wait(self, waiter: asyncio.Future[T], deadline: float | None) -> T:
        """Await ``waiter``; at ``deadline`` it fails with TimeoutError."""
        if deadline is None:
            return await waiter
        self.add(waiter, deadline, lambda: _time_out(waiter, self.message))
        try:
            return await waiter
        finally:
            self._pending.pop(waiter, None)

    def _sweep(self) -> None:
        now = self.loop.time()
        expired = [key for key, (deadline, _) in self._pending.items() if deadline <= now]
        for key in expired:
            _, expire = self._pending.pop(key)
            expire()
        self._timer = self.loop.call_later(self.tick, self._sweep) if self._pending else None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _time_out(waiter: asyncio.Future[Any], message: str) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(message))
