"""Sends an UpstreamRequest over :mod:`.http1` and returns its response.

Transport errors are translated here, once, into the gateway's UpstreamError family.
The ``mock`` provider is answered in-process by the same interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn, Protocol, final

from . import http1
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

    def divert(self, sink: Callable[[bytes], bool]) -> None:
        """Offer body slices to ``sink`` as they arrive; those it declines come from read_chunk."""
        ...


@final
class _StreamedResponse:
    """An http1 response read slice by slice, each read bounded by the route's timeout (a stall fails)."""

    __slots__ = ("_read_timeout", "_response", "_target", "status")

    def __init__(self, response: http1.Response, target: Target, *, read_timeout: float) -> None:
        self._response = response
        self._target = target
        self._read_timeout = read_timeout
        self.status = response.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    async def read(self) -> bytes:
        return await http1.read_all(self.read_chunk)  # each slice within the read timeout

    async def read_chunk(self) -> bytes:
        response = self._response
        try:  # not a context manager: this runs once per streamed chunk
            return await response.read_chunk(response.loop.time() + self._read_timeout)
        except Exception as exc:
            _raise_translated(self._target, exc)

    def close(self) -> None:
        self._response.close()

    def divert(self, sink: Callable[[bytes], bool]) -> None:
        self._response.divert(sink, self._read_timeout)  # a stall is still a stall


@final
class _BufferedResponse:
    """A response already in memory: a whole upstream body, or an answer of the ``mock`` provider."""

    __slots__ = ("_chunks", "headers", "status")

    def __init__(
        self, chunks: Iterator[bytes], status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = headers or {}
        self._chunks = chunks

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    async def read_chunk(self) -> bytes:
        return next(self._chunks, b"")

    def close(self) -> None:
        self._chunks = iter(())

    def divert(self, sink: Callable[[bytes], bool]) -> None:
        """Nothing: every slice is in memory already, and read_chunk hands it over at once."""


def _raise_translated(target: Target, exc: BaseException) -> NoReturn:
    """Raise a transport failure as the UpstreamError it means (httpx-style); anything else as it is."""
    where = f"provider '{target.provider}'"
    if isinstance(exc, TimeoutError):
        raise UpstreamTimeoutError(f"{where} did not answer in time") from exc
    if isinstance(exc, http1.ConnectionBrokenError) and exc.answered:
        raise UpstreamError(
            f"{where} broke off its answer mid-way: {exc}", reason=FallbackReason.CONNECTION_ERROR
        ) from exc
    if isinstance(exc, http1.MalformedResponseError):
        raise UpstreamError(f"{where} sent an answer that is not HTTP: {exc}", reason=None) from exc
    if isinstance(exc, OSError):
        raise UpstreamError(
            f"{where} could not be reached: {type(exc).__name__}", reason=FallbackReason.CONNECTION_ERROR
        ) from exc
    if isinstance(exc, ValueError):  # a header that cannot go on the wire (from configuration)
        raise UpstreamError(f"the request to {where} cannot be sent: {exc}", reason=None) from exc
    raise exc


class Upstream:
    """One keep-alive pool per upstream origin, created on first use."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int], http1.Pool] = {}

    def _pool(self, origin: tuple[str, str, int]) -> http1.Pool:
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = http1.Pool(*origin)
        return pool

    async def send(
        self, request: UpstreamRequest, target: Target, *, timeout: float, stream: bool
    ) -> UpstreamResponse:
        """A whole response read within ``timeout``, or a stream as soon as its headers arrived."""
        if target.type is ProviderType.MOCK:
            return _mock_answer(request, stream=stream)
        try:
            origin, path = http1.split_url(request.url)
            pool = self._pool(origin)
            deadline = pool.loop.time() + timeout
            response = await pool.request(
                request.method, path, request.headers, request.body, deadline=deadline
            )
            if not stream:  # a whole body is bounded in total, headers and body together
                body = await response.read(deadline)
                return _BufferedResponse(iter([body]), response.status, response.headers)
        except Exception as exc:
            _raise_translated(target, exc)
        return _StreamedResponse(response, target, read_timeout=timeout)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def _mock_answer(request: UpstreamRequest, *, stream: bool) -> UpstreamResponse:
    if request.url.endswith("/embeddings"):
        return _BufferedResponse(iter([mock.embeddings(request.body)]))
    if stream:
        return _BufferedResponse(mock.chat_stream(request.body))
    return _BufferedResponse(iter([mock.chat_completion(request.body)]))
