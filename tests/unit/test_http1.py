"""The upstream HTTP/1.1 client against raw HTTP servers on loopback, one behaviour each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sluice_proxy import http1

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """An asyncio server whose handler writes exactly the bytes a test wants."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.closed_by_client = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and Content-Length body), recorded; None at the client's EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.closed_by_client.set()
            return None
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


@pytest.fixture
async def pool_for() -> AsyncIterator[Callable[[RawServer], http1.Pool]]:
    pools: list[http1.Pool] = []

    def make(server: RawServer) -> http1.Pool:
        pools.append(http1.Pool("http", "127.0.0.1", server.port))
        return pools[-1]

    yield make
    for pool in pools:
        pool.close()


async def test_keep_alive_reuses_one_connection(pool_for: Callable[[RawServer], http1.Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            writer.write(ok(b'{"n": %d}' % len(server.requests)))

    async with RawServer(handler) as server:
        pool = pool_for(server)
        for n in (1, 2, 3):
            response = await pool.request("POST", "/v1/x", {"Authorization": "Bearer k"}, b"{}")
            assert response.status == 200 and response.headers["content-type"] == "application/json"
            assert await response.read() == b'{"n": %d}' % n
        assert server.connections == 1
        assert server.requests[0].startswith(b"POST /v1/x HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nAuthorization: Bearer k\r\n" in server.requests[0]


async def test_a_reused_connection_closed_without_an_answer_is_retried_once(
    pool_for: Callable[[RawServer], http1.Pool],
) -> None:
    """The idle keep-alive race: the server closes the pooled connection as the next request arrives."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first_connection = server.connections == 1
        await server.read_request(reader)
        writer.write(ok(b"%d" % server.connections))
        await writer.drain()
        if first_connection:
            await server.read_request(reader)  # then close without a byte of answer

    async with RawServer(handler) as server:
        pool = pool_for(server)
        assert await (await pool.request("POST", "/", {}, b"1")).read() == b"1"
        assert await (await pool.request("POST", "/", {}, b"2")).read() == b"2"
        assert server.connections == 2


async def test_a_new_connection_closed_without_an_answer_is_an_error(
    pool_for: Callable[[RawServer], http1.Pool],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)

    async with RawServer(handler) as server:
        with pytest.raises(http1.ConnectionBrokenError) as caught:
            await pool_for(server).request("POST", "/", {}, b"")
        assert not caught.value.answered and server.connections == 1, "not retried: nothing was stale"


async def test_a_body_without_length_ends_with_the_connection(
    pool_for: Callable[[RawServer], http1.Pool],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")

    async with RawServer(handler) as server:
        response = await pool_for(server).request("POST", "/", {}, b"")
        assert await response.read() == b"part one, part two"


async def test_chunked_bodies_arrive_slice_by_slice(pool_for: Callable[[RawServer], http1.Pool]) -> None:
    gate = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ndata: \r\n")
        await writer.drain()
        await gate.wait()
        writer.write(b"2\r\nhi\r\n0\r\n\r\n")

    async with RawServer(handler) as server:
        response = await pool_for(server).request("POST", "/", {}, b"")
        assert await response.read_chunk() == b"data: "
        gate.set()
        assert await response.read_chunk() == b"hi"
        assert await response.read_chunk() == b""


async def test_a_body_cut_short_is_an_error_not_an_end(pool_for: Callable[[RawServer], http1.Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")

    async with RawServer(handler) as server:
        response = await pool_for(server).request("POST", "/", {}, b"")
        with pytest.raises(http1.ConnectionBrokenError) as caught:
            await response.read()
        assert caught.value.answered


async def test_closing_a_response_early_closes_its_connection(
    pool_for: Callable[[RawServer], http1.Pool],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await server.read_request(reader)  # returns None at the client's EOF

    async with RawServer(handler) as server:
        pool = pool_for(server)
        response = await pool.request("POST", "/", {}, b"")
        assert await response.read_chunk() == b"first"
        response.close()
        await asyncio.wait_for(server.closed_by_client.wait(), 10)
        assert not pool._idle, "an unfinished connection is never pooled"


async def test_a_large_body_read_slowly_arrives_whole(pool_for: Callable[[RawServer], http1.Pool]) -> None:
    """More than MAX_BUFFER pauses the connection's reading; reading on resumes it, nothing is lost."""
    body = bytes(range(256)) * (4 * http1.MAX_BUFFER // 256)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(ok(body))
        await writer.drain()

    async with RawServer(handler) as server:
        response = await pool_for(server).request("POST", "/", {}, b"")
        received = bytearray()
        while chunk := await response.read_chunk():
            received += chunk
            await asyncio.sleep(0.001)
        assert bytes(received) == body


async def test_an_error_status_and_its_body_come_through(pool_for: Callable[[RawServer], http1.Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}")

    async with RawServer(handler) as server:
        response = await pool_for(server).request("POST", "/", {}, b"")
        assert (response.status, response.headers["retry-after"], await response.read()) == (429, "3", b"{}")


async def test_header_values_cannot_smuggle_lines(pool_for: Callable[[RawServer], http1.Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)

    async with RawServer(handler) as server:
        with pytest.raises(ValueError, match="line break"):
            await pool_for(server).request("POST", "/", {"x-evil": "a\r\nHost: elsewhere"}, b"")
        assert server.requests == []


async def test_garbage_is_a_malformed_response(pool_for: Callable[[RawServer], http1.Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    async with RawServer(handler) as server:
        with pytest.raises(http1.MalformedResponseError):
            await pool_for(server).request("POST", "/", {}, b"")


def test_urls_split_into_origin_and_target() -> None:
    assert http1.split_url("https://api.openai.com/v1/chat/completions") == (
        ("https", "api.openai.com", 443),
        "/v1/chat/completions",
    )
    assert http1.split_url("http://127.0.0.1:8000/openai/deployments/d/chat?api-version=1") == (
        ("http", "127.0.0.1", 8000),
        "/openai/deployments/d/chat?api-version=1",
    )
    with pytest.raises(ValueError):
        http1.split_url("ftp://example.test/")


async def test_a_deadline_bounds_the_head_and_the_connection_is_dropped(
    pool_for: Callable[[RawServer], http1.Pool],
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first_connection = server.connections == 1
        await server.read_request(reader)
        if not first_connection:
            writer.write(ok(b"fresh"))
        await server.read_request(reader)  # the first request is never answered: wait for the close

    async with RawServer(handler) as server:
        pool = pool_for(server)
        with pytest.raises(TimeoutError, match="did not answer in time"):  # ours, not the outer bound's
            async with asyncio.timeout(5):
                await pool.request("POST", "/", {}, b"", deadline=pool.loop.time() + 0.05)
        await asyncio.wait_for(server.closed_by_client.wait(), 5)  # a late answer can never be misread
        assert await (await pool.request("POST", "/", {}, b"")).read() == b"fresh"
        assert server.connections == 2


async def test_a_deadline_bounds_a_body_that_stalls(pool_for: Callable[[RawServer], http1.Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf ")
        await server.read_request(reader)  # the rest never comes; returns at the client's close

    async with RawServer(handler) as server:
        pool = pool_for(server)
        response = await pool.request("POST", "/", {}, b"", deadline=pool.loop.time() + 5)
        assert await response.read_chunk() == b"half "
        with pytest.raises(TimeoutError, match="did not answer in time"):
            async with asyncio.timeout(5):
                await response.read(pool.loop.time() + 0.05)
        await asyncio.wait_for(server.closed_by_client.wait(), 5)
