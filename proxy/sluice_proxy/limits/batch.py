"""The proxy's Redis client: what is asked in the same event-loop tick goes to Redis as one write.

A burst of N concurrent requests (admissions and settlements alike) then costs one write and
one round trip instead of N of each. Requests of the same script template (one tenant and
route) join one :class:`ScriptCall`, and the connection hands each call its reply directly:
no future, task or ``asyncio.timeout`` between them, because each of those is another
event-loop callback or, on Python 3.11, a ``getpid`` system call. One sweep of the writes
still unanswered bounds every caller's wait by ``redis.timeout``. Writes travel on one
pipelined connection (:mod:`.pipe`), so a slow write does not hold up the next tick's.
Plain commands (PING, the response cache's GET and SET, usage reads) take the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import hiredis
from mypy_extensions import mypyc_attr

from .pipe import NoScriptError, PipeClosedError, RedisPipe, open_pipe, settle

LOG = logging.getLogger("sluice.limits")


class Script:
    """A Lua script, run by its SHA1 (EVALSHA) and loaded (SCRIPT LOAD) when Redis lacks it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


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

    def __init__(self, script: Script, keys: Sequence[str], *, before: Sequence[str | int] = ()) -> None:
        self.script = script
        self._fixed = 3 + len(keys) + len(before)
        self._head = packed_args(("EVALSHA", script.sha, len(keys), *keys, *before))

    def pack(self, values: Sequence[str | int]) -> bytes:
        """The whole command: the fixed arguments, then ``values``."""
        return b"*%d\r\n" % (self._fixed + len(values)) + self._head + packed_args(values)


@mypyc_attr(allow_interpreted_subclasses=True)
class Call:
    """One command of a write: its packed form, and what to do with its reply.

    The connection calls the object with the reply, or with the RedisError or the
    connection error it became.
    """

    __slots__ = ()

    def packed(self) -> bytes | None:
        """The command as RESP; None when nobody wants its reply any more."""
        raise NotImplementedError

    def fail(self, error: BaseException) -> None:
        """Tell whoever waits that the command failed."""
        raise NotImplementedError

    def __call__(self, reply: Any) -> None:
        raise NotImplementedError


class Command(Call):
    """A plain command whose reply resolves a future."""

    __slots__ = ("_packed", "future")

    def __init__(self, args: tuple[str | bytes | int | float, ...], future: asyncio.Future[Any]) -> None:
        self._packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
        self.future = future

    def packed(self) -> bytes | None:
        return None if self.future.done() else self._packed  # done: its caller gave up

    def fail(self, error: BaseException) -> None:
        settle(self.future, error)

    def __call__(self, reply: Any) -> None:
        settle(self.future, reply)


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled: tests subclass it too
class ScriptCall(Call):
    """One script call, the items that joined it this tick, and what to do with its reply.

    A NOSCRIPT reply sends the call once more, after a load.
    """

    __slots__ = ("client", "evalsha", "items", "retried")

    MAX_ITEMS: Final = 256
    """Items one call carries at most: a script holds Redis while it runs, and Lua's ``unpack``
    (ZADD and ZREM of every admitted id) takes a few thousand values at most."""

    def __init__(self, client: RedisClient, evalsha: Evalsha) -> None:
        self.client = client
        self.evalsha = evalsha
        self.items: list[Any] = []
        self.retried = False

    def arguments(self) -> list[str | int] | None:
        """The items' own script arguments, in order; None when no item wants the call any more."""
        raise NotImplementedError

    def packed(self) -> bytes | None:
        arguments = self.arguments()
        return None if arguments is None else self.evalsha.pack(arguments)

    def deliver(self, result: Any) -> None:
        """Give each item its part of the script's result."""
        raise NotImplementedError

    def fail(self, error: BaseException) -> None:
        """Tell each item the call failed."""
        raise NotImplementedError

    def __call__(self, reply: Any) -> None:
        if isinstance(reply, BaseException):
            if isinstance(reply, NoScriptError) and not self.retried:
                self.retried = True
                self.client.retry(self)
            else:
                self.fail(reply)
            return
        try:
            self.deliver(reply)
        except Exception as malformed:  # not the script's shape: no caller may wait forever
            self.fail(malformed)


C = TypeVar("C", bound=ScriptCall)


class RedisClient:
    """Commands and Lua scripts on one connection; scripts run by SHA and load after NOSCRIPT."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._open: dict[Evalsha, ScriptCall] = {}
        """This tick's calls still taking items, one per template, in the order they opened."""
        self._ready: list[Call] = []
        """This tick's calls taking no more items; they go first."""
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick = max(0.001, min(0.05, timeout / 4))
        """How often unanswered writes are checked: a timeout fires at most this late."""
        self._unanswered: deque[tuple[float, RedisPipe, int]] = deque()
        """Per write: its deadline, its connection, and the connection's ``sent`` after it."""
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pipe: RedisPipe | None = None
        self._connecting: asyncio.Task[RedisPipe] | None = None
        self._closed = False
        self._scripts: list[Script] = []
        """Loaded first thing on every connection (:meth:`script`)."""

    def script(self, source: str) -> Script:
        """A script that every connection loads before anything else is sent on it.

        EVALSHA then finds it even on a Redis that never saw it (fresh, or restarted). A
        NOSCRIPT reply, and the load-and-retry it costs, would let a call sent after this
        one run first: an admission could find the slot its client's previous request
        holds because that request's settlement waited for the load.
        """
        script = Script(source)
        self._scripts.append(script)
        return script

    def command(self, *args: str | bytes | int | float) -> asyncio.Future[Any]:
        """The reply of one command, sent with this tick's write; an error reply raises."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.send(Command(args, future))
        return future

    def join(self, evalsha: Evalsha, make: Callable[..., C], *args: Any) -> C:
        """This tick's call of ``evalsha`` for one more item, opened as ``make(self, evalsha, *args)``."""
        call = self._open.get(evalsha)
        if call is None or len(call.items) >= ScriptCall.MAX_ITEMS:
            if call is not None:  # full: it goes ahead of the tick's later calls
                self._ready.append(call)
            call = self._open[evalsha] = make(self, evalsha, *args)
            self._schedule()
        return call  # type: ignore[return-value]

    def send(self, call: Call) -> None:
        """``call`` alone, in this tick's write."""
        self._ready.append(call)
        self._schedule()

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()  # once: each call of it is a getpid
            self._flush_scheduled = False  # one scheduled on a closed loop never runs
            self._unanswered.clear()
            self._sweep_timer = None
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)  # after every caller of this tick has joined

    def _flush(self) -> None:
        self._flush_scheduled = False
        calls = self._ready
        calls += self._open.values()
        self._ready, self._open = [], {}
        self._send(calls)

    def _send(self, calls: list[Call]) -> None:
        commands, sent = [], []
        for call in calls:
            # An item whose caller gave up (its deadline passed while this waited for a
            # connection, and it may have fallen back to the local limiter) must not run late.
            packed = call.packed()
            if packed is not None:
                commands.append(packed)
                sent.append(call)
        if not sent:
            return
        pipe = self._pipe
        if pipe is None or pipe.closed:
            self._spawn(self._send_when_connected(sent))
            return
        try:
            pipe.send_to(commands, sent)
        except PipeClosedError as error:
            for call in sent:
                call.fail(error)
            return
        assert self._loop is not None
        self._unanswered.append((self._loop.time() + self.timeout, pipe, pipe.sent))
        if self._sweep_timer is None:
            self._sweep_timer = self._loop.call_later(self._tick, self._sweep)

    def _sweep(self) -> None:
        """Fail what the oldest unanswered write still owes once its deadline has passed."""
        assert self._loop is not None
        unanswered, now = self._unanswered, self._loop.time()
        while unanswered:
            deadline, pipe, last = unanswered[0]
            if pipe.closed or pipe.received >= last:
                unanswered.popleft()
            elif deadline <= now:
                # Replies that never came may be stuck behind a half-open connection: start afresh.
                if self._pipe is pipe:
                    self._pipe = None
                pipe.close(TimeoutError(f"Redis did not answer within {self.timeout}s"))
            else:
                break
        self._sweep_timer = self._loop.call_later(self._tick, self._sweep) if unanswered else None

    async def _send_when_connected(self, calls: list[Call]) -> None:
        if self._closed:  # closed for good: no new connection for what comes late
            for call in calls:
                call.fail(PipeClosedError("the proxy's Redis connection is closed"))
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self._connection()
        except Exception as error:  # refused, TLS, AUTH, timeout: every caller hears it now
            for call in calls:
                call.fail(error)
            return
        self._send(calls)

    def retry(self, call: ScriptCall) -> None:
        """Redis lost the script since the connection loaded it (``SCRIPT FLUSH``): load it, run the call again.

        The load and the call go at once, in one write. Only calls that got NOSCRIPT run
        again: the others already ran, and an admission run twice would be counted twice.
        """
        self._send([_ScriptLoad(call.evalsha.script), call])

    def _spawn(self, coroutine: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self) -> RedisPipe:
        if self._pipe is not None and not self._pipe.closed:
            return self._pipe
        if self._connecting is None:  # one connect shared by every call that waits for it
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
            self._connecting.add_done_callback(self._connected)
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> RedisPipe:
        pipe = await open_pipe(self.url)
        if self._scripts:  # not awaited: the connection keeps its order, so they land first
            loads = [_ScriptLoad(script) for script in self._scripts]
            pipe.send_to([load.command for load in loads], loads)
        return pipe

    def _connected(self, task: asyncio.Task[RedisPipe]) -> None:
        self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._pipe = task.result()

    def close(self) -> None:
        self._closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None


class _ScriptLoad(Call):
    """SCRIPT LOAD, whose reply nobody waits for: the calls after it on the connection need it."""

    __slots__ = ("command",)

    def __init__(self, script: Script) -> None:
        self.command: bytes = hiredis.pack_command(("SCRIPT", "LOAD", script.source))  # type: ignore[arg-type]

    def packed(self) -> bytes | None:
        return self.command

    def fail(self, error: BaseException) -> None:
        self(error)

    def __call__(self, reply: Any) -> None:
        # A script that failed to load gets NOSCRIPT on its next call, which loads it again.
        if isinstance(reply, BaseException) and not isinstance(reply, PipeClosedError):
            LOG.warning("loading a Lua script into Redis failed: %s", reply)
