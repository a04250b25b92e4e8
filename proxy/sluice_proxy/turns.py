"""Work that waits for the end of the current event-loop turn, or a few milliseconds more.

A turn writes the responses its handlers returned before any callback scheduled during
it runs, so work that is only bookkeeping (limit settlements) stays off the requests'
path, and the turn's items are handled together in one warm loop. Waiting a little longer
gathers the items of several turns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

LOG = logging.getLogger("sluice")
T = TypeVar("T")


class AfterTurn(Generic[T]):
    """Items added during a turn, each handed to ``handle`` once the turn is over (or, with
    ``delay``, that many seconds after the first of them)."""

    def __init__(self, handle: Callable[[T], object], what: str, delay: float = 0.0) -> None:
        self._handle = handle
        self._what = what
        self._delay = delay
        self._items: list[T] = []

    def add(self, item: T) -> None:
        self._items.append(item)
        if len(self._items) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script or a test): at once
                self.drain()
                return
            if self._delay:
                loop.call_later(self._delay, self.drain)
            else:
                loop.call_soon(self.drain)

    def drain(self) -> None:
        """Handle every waiting item now; one that fails is logged, and the others still go."""
        items, self._items = self._items, []
        for item in items:
            try:
                self._handle(item)
            except Exception:
                LOG.exception("%s failed", self._what)
