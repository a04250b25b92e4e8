"""The only user of aiohttp's ClientSession: sends an UpstreamRequest, returns a response.

Foreign errors are translated here, once, into the gateway's UpstreamError family.
The ``mock`` provider is answered in-process by the same interface.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Protocol, final

import aiohttp

from .config.schema import FallbackReason, ProviderType
from .errors import UpstreamError, UpstreamTimeoutError
from .providers import Target, UpstreamRequest, mock


class UpstreamResponse(Protocol):
    status: int

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes: ...

    async def read_chunk(self) -> bytes:
        """The next slice of the body; b"" at its end."""
        ...

    def close(self) -> None:
        """Release the response; before its end this aborts the upstream request."""
        ...


@final
class _HTTPResponse:
    __slots__ = ("_response", "_target", "status")

    def __init__(self, response: aiohttp.ClientResponse, target: Target) -> None:
        self._response = response
        self._target = target
        self.status = response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def read(self) -> bytes:
        with _translated(self._target):
            return await self._response.read()

    async def read_chunk(self) -> bytes:
        with _translated(self._target):
            return await self._response.content.readany()

    def close(self) -> None:
        self._response.close()


@final
class _MockResponse:
    """An in-process answer of the ``mock`` provider."""

    __slots__ = ("_chunks", "headers", "status")

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = {}
        self._chunks = chunks

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    async def read_chunk(self) -> bytes:
        return next(self._chunks, b"")

    def close(self) -> None:
        self._chunks = iter(())


class _translated:
    """Context manager mapping aiohttp/asyncio failures to UpstreamError (httpx-style)."""

    __slots__ = ("_target",)

    def __init__(self, target: Target) -> None:
        self._target = target

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        where = f"provider '{self._target.provider}'"
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            raise UpstreamTimeoutError(f"{where} did not answer in time") from exc
        if isinstance(exc, aiohttp.ClientPayloadError):
            raise UpstreamError(
                f"{where} broke off its answer mid-way: {type(exc).__name__}",
                reason=FallbackReason.CONNECTION_ERROR,
            ) from exc
        if isinstance(exc, aiohttp.ClientError):
            raise UpstreamError(
                f"{where} could not be reached: {type(exc).__name__}", reason=FallbackReason.CONNECTION_ERROR
            ) from exc


class Upstream:
    """One pooled ClientSession per provider, created on first use."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, provider: str) -> aiohttp.ClientSession:
        session = self._sessions.get(provider)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            session = aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",))
            self._sessions[provider] = session
        return session

    async def send(
        self, request: UpstreamRequest, target: Target, *, timeout: float, stream: bool
    ) -> UpstreamResponse:
        """Send and return once the status line and headers arrived (the body follows)."""
        if target.type is ProviderType.MOCK:
            return _mock_answer(request, stream=stream)
        # Streams are bounded per read (a stalled stream fails); whole bodies in total.
        client_timeout = (
            aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
            if stream
            else aiohttp.ClientTimeout(total=timeout)
        )
        with _translated(target):
            response = await self._session(target.provider).request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=client_timeout,
            )
        return _HTTPResponse(response, target)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions))


def _mock_answer(request: UpstreamRequest, *, stream: bool) -> UpstreamResponse:
    if request.url.endswith("/embeddings"):
        return _MockResponse(iter([mock.embeddings(request.body)]))
    if stream:
        return _MockResponse(mock.chat_stream(request.body))
    return _MockResponse(iter([mock.chat_completion(request.body)]))


async def iterate(response: UpstreamResponse) -> AsyncIterator[bytes]:
    while chunk := await response.read_chunk():
        yield chunk
