"""Script calls made in the same event-loop tick go to Redis as one write.

A burst of N concurrent requests (admissions and settlements alike) then costs one write and
one round trip instead of N of each. Each caller awaits its own future, which the
connection's reply resolves directly: no task and no ``asyncio.timeout`` per batch, because
on Python 3.11 each of those asks ``get_running_loop()``, a ``getpid`` system call. The
batch's one deadline (``redis.timeout``, checked by one sweep with every other batch's)
bounds every caller's wait. Batches travel on one pipelined connection (:mod:`.pipe`), so a
slow batch does not hold up the next tick's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from ..deadlines import Deadlines
from .pipe import PipeClosedError, RedisPipe, Sink, open_pipe, settle

Call = tuple[AsyncScript, bytes, asyncio.Future[Any]]
"""A script, its packed EVALSHA command, and the caller's future."""


def packed_args(values: Sequence[str | int]) -> bytes:
    """``values`` as RESP bulk strings, without the array header that would count them."""
    packed: bytes = hiredis.pack_command(tuple(values))  # type: ignore[arg-type]
    return packed[packed.index(b"\n") + 1 :]


class Evalsha:
    """One script's EVALSHA with its keys and fixed arguments packed once; ``pack`` adds the rest.

    A request's scripts differ from the previous request's of the same tenant and route in
    their per-request arguments only, so packing only those takes most of the encoding off
    the hot path. How many there are may differ from call to call (one tick's requests).
    """

    __slots__ = ("_fixed", "_head", "script")

    def __init__(self, script: AsyncScript, keys: Sequence[str], *, before: Sequence[str | int] = ()) -> None:
        self.script = script
        self._fixed = 3 + len(keys) + len(before)
        self._head = packed_args(("EVALSHA", script.sha, len(keys), *keys, *before))

    def pack(self, *values: str | int) -> bytes:
        """The whole command: the fixed arguments, then ``values``."""
        return b"*%d\r\n" % (self._fixed + len(values)) + self._head + packed_args(values)


class _Batch:
    """The calls of one tick: resolves their futures as replies come, fails the rest at the deadline."""

    __slots__ = ("_deadlines", "_pipeline", "calls", "pending")

    def __init__(self, pipeline: ScriptPipeline, calls: list[Call], deadlines: Deadlines) -> None:
        self._pipeline = pipeline
        self.calls = calls
        self.pending = len(calls)
        self._deadlines = deadlines
        deadlines.add(self, deadlines.loop.time() + pipeline.timeout, self._expire)

    def sink(self, call: Call, *, may_retry: bool) -> Sink:
        """The reply handler of one call; a NOSCRIPT reply is sent back to the pipeline once."""

        def receive(reply: Any) -> None:
            if may_retry and isinstance(reply, NoScriptError):
                self._pipeline.retry(self, call)
            else:
                self.resolve(call[2], reply)

        return receive

    def resolve(self, future: asyncio.Future[Any], reply: Any) -> None:
        if settle(future, reply):
            self.pending -= 1
            if not self.pending:
                self._deadlines.discard(self)

    def fail(self, error: BaseException, calls: list[Call]) -> None:
        for _, _, future in calls:
            self.resolve(future, error)

    def _expire(self) -> None:
        if self.pending:
            # Replies that never came may be stuck behind a half-open connection: start afresh.
            self._pipeline.close()
            self.fail(TimeoutError(f"Redis did not answer within {self._pipeline.timeout}s"), self.calls)


class ScriptPipeline:
    """Runs Lua scripts by SHA (EVALSHA), loading them again after a NOSCRIPT reply."""

    def __init__(self, redis: Redis, url: str, timeout: float) -> None:
        self.redis = redis
        self.url = url
        self.timeout = timeout
        self._queue: list[Call] = []
        self._preparers: list[Callable[[], None]] = []
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pipe: RedisPipe | None = None
        self._connecting: asyncio.Task[RedisPipe] | None = None

    def load(self, source: str) -> AsyncScript:
        return self.redis.register_script(source)

    def __call__(self, evalsha: Evalsha, *values: str | int) -> asyncio.Future[Any]:
        """Run ``evalsha`` with its variable ``values``, in one write with this tick's other calls."""
        future: asyncio.Future[Any] = self._schedule().create_future()
        self._queue.append((evalsha.script, evalsha.pack(*values), future))
        return future

    def before_write(self, prepare: Callable[[], None]) -> None:
        """Run ``prepare`` once, just before this tick's write; the calls it makes go in that write."""
        self._schedule()
        self._preparers.append(prepare)

    def _schedule(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()  # once: each call of it is a getpid
            self._flush_scheduled = False  # one scheduled on a closed loop never runs
            # One sweep bounds every batch in flight; it fires at most a quarter of the timeout late.
            self._deadlines = Deadlines(loop, tick=max(0.001, min(0.05, self.timeout / 4)))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)  # after every caller of this tick has queued
        return loop

    def _flush(self) -> None:
        assert self._deadlines is not None
        self._flush_scheduled = False
        preparers, self._preparers = self._preparers, []
        for prepare in preparers:
            prepare()
        if not self._queue:
            return
        batch = _Batch(self, self._queue, self._deadlines)
        self._queue = []
        self._send(batch, batch.calls, may_retry=True)

    def _send(self, batch: _Batch, calls: list[Call], *, may_retry: bool) -> None:
        # A caller whose deadline passed while this waited for a connection has given up (and may
        # have fallen back to the local limiter): its script must not run late.
        calls = [call for call in calls if not call[2].done()]
        if not calls:
            return
        pipe = self._pipe
        if pipe is None or pipe.closed:
            self._spawn(self._send_when_connected(batch, calls, may_retry=may_retry))
            return
        try:
            pipe.send_to(
                [call[1] for call in calls], [batch.sink(call, may_retry=may_retry) for call in calls]
            )
        except PipeClosedError as error:
            batch.fail(error, calls)

    async def _send_when_connected(self, batch: _Batch, calls: list[Call], *, may_retry: bool) -> None:
        try:
            await self._connection()
        except Exception as error:  # refused, TLS, AUTH: every caller hears it now, not at the deadline
            batch.fail(error, calls)
            return
        self._send(batch, calls, may_retry=may_retry)

    def retry(self, batch: _Batch, call: Call) -> None:
        """Redis restarted, flushed its scripts, or has not seen this one yet: load it, run the call again.

        Only calls that got NOSCRIPT run again: the others already ran, and an admission
        run twice would be counted twice.
        """
        self._spawn(self._load_and_send(batch, call))

    async def _load_and_send(self, batch: _Batch, call: Call) -> None:
        try:
            await self.redis.script_load(call[0].script)
        except Exception as error:
            batch.fail(error, [call])
            return
        self._send(batch, [call], may_retry=False)

    def _spawn(self, coroutine: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
