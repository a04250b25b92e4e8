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
        """What a waiter past its deadline fails with, as a TimeoutError."""
        self._pending: dict[asyncio.Future[Any], float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def bound(self, waiter: asyncio.Future[T], deadline: float | None) -> asyncio.Future[T]:
        """``waiter``, to await: at ``deadline`` it fails with TimeoutError, unless it is done.

        Not a coroutine, since it runs for every streamed chunk; the sweep forgets the waiters
        that are done, so nothing has to run after the await.
        """
        if deadline is not None:
            self._pending[waiter] = deadline
            if self._timer is None:
                self._timer = self.loop.call_later(self.tick, self._sweep)
        return waiter

    def extend(self, waiter: asyncio.Future[Any], deadline: float) -> None:
        """Move the deadline of a ``waiter`` given to :meth:`bound`; one without a deadline keeps none."""
        if waiter in self._pending:
            self._pending[waiter] = deadline

    def _sweep(self) -> None:
        now, pending, self._pending = self.loop.time(), self._pending, {}
        for waiter, deadline in pending.items():
            if waiter.done():
                continue
            if deadline <= now:
                waiter.set_exception(TimeoutError(self.message))
            else:
                self._pending[waiter] = deadline
        self._timer = self.loop.call_later(self.tick, self._sweep) if self._pending else None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
