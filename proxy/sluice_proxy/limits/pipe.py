"""The proxy's connection to Redis: RESP packed and parsed by hiredis, replies in order.

redis-py takes a pooled connection, a lock and a timeout for every reply it reads; on the
hot path (two script calls per request) that cost more than the rest of the request, and
importing it costs every proxy process 7 MiB and 70 ms. Here a batch of commands is one
write, and each reply goes to its sink (a plain callback, no task) as hiredis parses it, so
batches of several event-loop ticks can be in flight on one connection. The operator, which
is neither a sidecar nor on a request's path, reads Redis with redis-py.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from mypy_extensions import mypyc_attr

from ..config.redis_url import RedisAddress


# Compiled: a builtin exception's subclass stays a Python class.
@mypyc_attr(native_class=False)
class RedisError(Exception):
    """Redis answered with an error, or could not be asked."""


@mypyc_attr(native_class=False)
class ResponseError(RedisError):
    """An error reply (``-ERR ...``)."""


@mypyc_attr(native_class=False)
class NoScriptError(ResponseError):
    """EVALSHA of a script Redis does not have (restarted, or ``SCRIPT FLUSH``)."""


@mypyc_attr(native_class=False)
class AuthenticationError(ResponseError):
    """The password (or user) of the URL was refused, or Redis wants one."""


@mypyc_attr(native_class=False)
class PipeClosedError(ConnectionError):
    """The connection to Redis is gone; the replies still owed on it will not come."""


def _reply_error(message: str) -> RedisError:
    """hiredis hands error replies over as data; the prefix says which error it is."""
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return AuthenticationError(message)
    return ResponseError(message)


Sink = Callable[[Any], object]
"""Receives one reply: its value, or the RedisError (or PipeClosedError) it became."""


def settle(future: asyncio.Future[Any], reply: Any) -> bool:
    """Resolve ``future`` with a sink's reply (an exception fails it); False if it was done already."""
    if future.done():
        return False  # its caller gave up (timeout); the order of the rest still holds
    if isinstance(reply, BaseException):
        future.set_exception(reply)
    else:
        future.set_result(reply)
    return True


class RedisPipe(asyncio.Protocol):
    """An asyncio protocol: :meth:`send_to` writes commands and hands each reply to its sink."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiting: deque[Sink] = deque()
        self._transport: asyncio.Transport | None = None
        # Replies asked for and handed out so far: a write is answered once ``received``
        # reaches what ``sent`` was after it, which is all a deadline sweep needs to know.
        self.sent = 0
        self.received = 0

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            sink = self._waiting.popleft()
            self.received += 1
            sink(_reply_error(str(reply)) if isinstance(reply, hiredis.ReplyError) else reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail_owed(PipeClosedError(f"the connection to Redis was lost ({exc or 'closed'})"))

    def _fail_owed(self, error: BaseException) -> None:
        while self._waiting:
            self._waiting.popleft()(error)

    def send_to(self, commands: list[bytes], sinks: Sequence[Sink]) -> None:
        """Write packed commands (``hiredis.pack_command``); each reply, in order, goes to its sink.

        A sink gets the reply, or the exception for an error reply or a lost connection.
        """
        if self._transport is None or self._transport.is_closing():
            raise PipeClosedError("the connection to Redis is closed")
        self._waiting.extend(sinks)
        self.sent += len(sinks)
        self._transport.write(b"".join(commands))

    def send(self, commands: list[bytes]) -> list[asyncio.Future[Any]]:
        """:meth:`send_to` with one future per reply, for callers that await them."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self.send_to(commands, [functools.partial(settle, future) for future in futures])
        return futures

    def close(self, error: BaseException | None = None) -> None:
        """Abort: whatever is still owed fails with ``error`` now, or with PipeClosedError."""
        if error is not None:
            self._fail_owed(error)
        if self._transport is not None:
            self._transport.abort()


async def open_pipe(url: str) -> RedisPipe:
    """Connect as ``url`` says (:class:`RedisAddress`), then AUTH and SELECT."""
    address = RedisAddress.parse(url)
    loop = asyncio.get_running_loop()
    pipe: RedisPipe
    if address.socket is not None:
        _, pipe = await loop.create_unix_connection(RedisPipe, address.socket)
    else:
        tls = address.ssl_context()
        _, pipe = await loop.create_connection(
            RedisPipe, address.host, address.port, ssl=tls, server_hostname=address.host if tls else None
        )
    handshake: list[tuple[Any, ...]] = []
    if address.password:
        credentials = (address.username, address.password) if address.username else (address.password,)
        handshake.append(("AUTH", *credentials))
    if address.db:
        handshake.append(("SELECT", address.db))
    if handshake:
        try:
            await asyncio.gather(*pipe.send([hiredis.pack_command(command) for command in handshake]))
        except BaseException:
            pipe.close()
            raise
    return pipe
