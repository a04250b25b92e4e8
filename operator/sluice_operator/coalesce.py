"""Run one job per key at a time, folding a burst of requests into one run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

LOG = logging.getLogger("sluice_operator")


class Coalescer:
    """``poke(key)`` runs ``work(key)`` after ``delay``; pokes during a run cause exactly one more run.

    A failing run is retried after ``retry`` seconds: the work is level-triggered, so
    running it again is always safe.
    """

    def __init__(self, work: Callable[[str], Awaitable[None]], *, delay: float, retry: float = 5.0) -> None:
        self._work = work
        self._delay = delay
        self._retry = retry
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def poke(self, key: str) -> None:
        if key in self._tasks:
            self._again.add(key)
        else:
            self._tasks[key] = asyncio.create_task(self._run(key), name=f"sluice-render-{key}")

    async def _run(self, key: str) -> None:
        try:
            wait = self._delay
            while True:
                await asyncio.sleep(wait)  # debounce: gather the burst of changes
                self._again.discard(key)
                wait = self._delay
                try:
                    await self._work(key)
                except Exception:
                    LOG.exception("rendering namespace %s failed; retrying in %.0fs", key, self._retry)
                    self._again.add(key)
                    wait = self._retry
                if key not in self._again:
                    return
        finally:
            del self._tasks[key]

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
