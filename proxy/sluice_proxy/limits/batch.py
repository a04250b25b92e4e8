"""Script calls made in the same event-loop tick go to Redis as one pipeline.

A burst of N concurrent requests (admissions and settlements alike) then costs one
connection, one round trip and one timer instead of N of each. Each caller awaits its own
reply; the pipeline's deadline (``redis.timeout``) bounds every caller's wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

Call = tuple[AsyncScript, list[str], list[str | int], asyncio.Future[Any]]


class ScriptPipeline:
    """Runs Lua scripts by SHA (EVALSHA), loading them again after a NOSCRIPT reply."""

    def __init__(self, redis: Redis, timeout: float) -> None:
        self.redis = redis
        self.timeout = timeout
        self._queue: list[Call] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def load(self, source: str) -> AsyncScript:
        return self.redis.register_script(source)

    def __call__(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((script, keys, args, future))
        if len(self._queue) == 1:
            loop.call_soon(self._flush)  # after every caller of this tick has queued
        return future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Call]) -> None:
        replies: list[Any]
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._execute(batch)
                missing = {
                    call[0].script
                    for call, reply in zip(batch, replies, strict=True)
                    if isinstance(reply, NoScriptError)
                }
                if missing:  # Redis restarted or flushed its scripts
                    for source in missing:
                        await self.redis.script_load(source)
                    replies = await self._execute(batch)
        except (RedisError, OSError, TimeoutError) as error:
            replies = [error] * len(batch)
        for (_, _, _, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, batch: list[Call]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies
