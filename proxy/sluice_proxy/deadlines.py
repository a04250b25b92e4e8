"""Deadlines checked by one periodic sweep instead of a timer each.

Arming and cancelling an event-loop timer costs about 2 µs, and the hot path would arm
several per request (the upstream's head, every body chunk). A sweep
every ``tick`` of the deadlines in flight costs a fraction of that; a deadline then fires up
to one tick late, which is why the tick is a small share of the timeouts it serves.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlines:
    """Waiters with a deadline (``loop.time()`` clock); one that passes it fails with TimeoutError."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, tick: float, message: str = "deadline passed"
    ) -> None:
        self.loop = loop
        self.tick = tick
        self.message = message
        """What a :meth:`wait` past its deadline raises TimeoutError with."""
        self._pending: dict[asyncio.Future[Any], float] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def wait(self, waiter: asyncio.Future[T], deadline: float | None) -> T:
        """Await ``waiter``; at ``deadline`` it fails with TimeoutError."""
        if deadline is None:
            return await waiter
        self._pending[waiter] = deadline
        if self._timer is None:
            self._timer = self.loop.call_later(self.tick, self._sweep)
        try:
            return await waiter
        finally:
            del self._pending[waiter]

    def _sweep(self) -> None:
        now = self.loop.time()
        for waiter in [waiter for waiter, deadline in self._pending.items() if deadline <= now]:
            if not waiter.done():
                waiter.set_exception(TimeoutError(self.message))
        self._timer = self.loop.call_later(self.tick, self._sweep) if self._pending else None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
