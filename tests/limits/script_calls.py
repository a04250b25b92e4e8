"""A script call with one caller awaiting its reply, for tests of the Redis client by itself."""

from __future__ import annotations

import asyncio
from typing import Any

from sluice_proxy.limits.batch import Evalsha, RedisClient, ScriptCall


class _Single(ScriptCall):
    __slots__ = ()

    def arguments(self) -> list[str | int] | None:
        ((values, future),) = self.items
        return None if future.done() else list(values)

    def deliver(self, result: Any) -> None:
        self.items[0][1].set_result(result)

    def fail(self, error: BaseException) -> None:
        self.items[0][1].set_exception(error)


def run(client: RedisClient, evalsha: Evalsha, *values: str | int) -> asyncio.Future[Any]:
    """The reply of ``evalsha`` with ``values``, sent in this tick's write."""
    call = _Single(client, evalsha)
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    call.items.append((values, future))
    client.send(call)
    return future
