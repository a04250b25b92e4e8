"""Script calls made in the same event-loop tick go to Redis as one write.

A burst of N concurrent requests (admissions and settlements alike) then costs one write,
one round trip and one timer instead of N of each. Each caller awaits its own reply; the
batch's deadline (``redis.timeout``) bounds every caller's wait. Batches travel on one
pipelined connection (:mod:`.pipe`), so a slow batch does not hold up the next tick's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from .pipe import RedisPipe, open_pipe

Call = tuple[AsyncScript, list[str], list[str | int], asyncio.Future[Any]]


class ScriptPipeline:
    """Runs Lua scripts by SHA (EVALSHA), loading them again after a NOSCRIPT reply."""

    def __init__(self, redis: Redis, url: str, timeout: float) -> None:
        self.redis = redis
        self.url = url
        self.timeout = timeout
        self._queue: list[Call] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._pipe: RedisPipe | None = None
        self._connecting: asyncio.Task[RedisPipe] | None = None

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
                # Redis restarted, flushed its scripts, or has not seen one yet. Only the calls
                # that got NOSCRIPT run again: the others already ran, and an admission run
                # twice would be counted twice.
                retry = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
                if retry:
                    for source in {batch[i][0].script for i in retry}:
                        await self.redis.script_load(source)
                    again = await self._execute([batch[i] for i in retry])
                    for i, reply in zip(retry, again, strict=True):
                        replies[i] = reply
        except TimeoutError as error:
            # Replies that never came may be stuck behind a half-open connection: start afresh.
            self.close()
            replies = [error] * len(batch)
        except (RedisError, OSError) as error:
            replies = [error] * len(batch)
        for (_, _, _, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, batch: list[Call]) -> list[Any]:
        """Every EVALSHA of the batch in one write; the replies in order, error replies as exceptions."""
        pipe = await self._connection()
        futures = pipe.send(
            [
                # hiredis' stub types its argument as a 1-tuple; any tuple of str/int is accepted.
                hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))  # type: ignore[arg-type]
                for script, keys, args, _ in batch
            ]
        )
        # Replies come in order, mostly in one read: once the first is awaited the rest are ready.
        replies: list[Any] = []
        try:
            for future in futures:
                try:
                    replies.append(await future)
                except (RedisError, OSError) as error:
                    replies.append(error)
        except BaseException:  # the deadline passed: nobody waits for the rest any more
            for future in futures:
                future.cancel()
            raise
        return replies

    async def _connection(self) -> RedisPipe:
        if self._pipe is not None and not self._pipe.closed:
            return self._pipe
        if self._connecting is None:  # one connect shared by every batch that waits for it
            self._connecting = asyncio.get_running_loop().create_task(open_pipe(self.url))
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    def _connected(self, task: asyncio.Task[RedisPipe]) -> None:
        self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._pipe = task.result()

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
