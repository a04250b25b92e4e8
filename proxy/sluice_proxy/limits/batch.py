"""Script calls made in the same event-loop tick go to Redis as one pipeline.

A burst of N concurrent requests (admissions and settlements alike) then costs one
connection, one round trip and one timer instead of N of each. Each caller awaits its own
reply; the pipeline's deadline (``redis.timeout``) bounds every caller's wait.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError

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
        """One write of every EVALSHA, then their replies in order; an error reply is kept as such.

        Commands are packed by hiredis in C: redis-py's pipeline packs every argument in
        Python, which cost more than the rest of a request's limit handling together.
        """
        packed = [
            # hiredis' stub types its argument as a 1-tuple; any tuple of str/int is accepted.
            hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))  # type: ignore[arg-type]
            for script, keys, args, _ in batch
        ]
        pool = self.redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(packed, check_health=False)
            replies: list[Any] = []
            for _ in batch:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as error:
                    replies.append(error)
        except BaseException:
            # Replies may still be on the way: the connection must not serve another batch.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)
        return replies
