"""A fast mock OpenAI chat-completions upstream: a raw asyncio protocol with pre-rendered replies.

``POST …/chat/completions`` answers JSON, or SSE when the body asks for ``"stream": true``.
The path picks the stream shape: ``/v1/…`` sends 24 chunks at once, and
``/long/<chunks>/<milliseconds>/v1/…`` spreads ``<chunks>`` chunks evenly over that time.
``GET /healthz`` answers 200. HTTP/1.1 keep-alive, bodies by Content-Length only.

Run: ``python -m bench.upstream --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Final, cast

import orjson
import uvloop

STREAM_CHUNKS: Final = 24
PROMPT_TOKENS: Final = 20
_LONG_PATH: Final = re.compile(rb"^/long/(\d+)/(\d+)/")
_STREAM_MARKS: Final = (b'"stream":true', b'"stream": true')


def _chunk(body: bytes) -> bytes:
    """One HTTP/1.1 chunk (Transfer-Encoding: chunked)."""
    return b"%x\r\n%s\r\n" % (len(body), body)


def _event(data: dict[str, object]) -> bytes:
    return _chunk(b"data: " + orjson.dumps(data) + b"\n\n")


def _delta(text: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }


def _usage(completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion_tokens,
        "total_tokens": PROMPT_TOKENS + completion_tokens,
    }


def render_json_reply() -> bytes:
    body = orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "bench-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " tok" * STREAM_CHUNKS},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(STREAM_CHUNKS),
        }
    )
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    return head + body


STREAM_HEAD: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
TOKEN_CHUNK: Final = _event(_delta(" tok"))


def render_stream_tail(chunks: int) -> bytes:
    """The finish chunk, the usage chunk, [DONE] and the chunked-encoding terminator."""
    finish = _delta("")
    finish["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    usage = {**_delta(""), "choices": [], "usage": _usage(chunks)}
    return _event(finish) + _event(usage) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


JSON_REPLY: Final = render_json_reply()
STREAM_REPLY: Final = STREAM_HEAD + TOKEN_CHUNK * STREAM_CHUNKS + render_stream_tail(STREAM_CHUNKS)
HEALTH_REPLY: Final = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n" + (
    b'{"status":"ok"}'
)
NOT_FOUND: Final = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
LENGTH_REQUIRED: Final = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class UpstreamProtocol(asyncio.Protocol):
    """One client connection; requests are answered in order, one at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._pending: tuple[bytes, int] | None = None
        """(request head, end offset of its body) while the body is still arriving."""
        self._streaming: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._streaming is not None:
            self._streaming.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._streaming is None:
            self._serve()

    def _serve(self) -> None:
        while self._transport is not None and self._streaming is None:
            if self._pending is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self._buffer[:end]).lower()
                self._pending = (head, end + 4 + self._content_length(head))
            head, body_end = self._pending
            if body_end < 0:
                self._transport.write(LENGTH_REQUIRED)
                self._transport.close()
                return
            if len(self._buffer) < body_end:
                return
            body = bytes(self._buffer[len(head) + 4 : body_end])
            del self._buffer[:body_end]
            self._pending = None
            self._answer(head, body)

    @staticmethod
    def _content_length(head: bytes) -> int:
        """The body length; -1 for a chunked request body, which this server does not take."""
        if b"transfer-encoding: chunked" in head:
            return -1
        start = head.find(b"content-length:")
        if start < 0:
            return 0
        start += len(b"content-length:")
        stop = head.find(b"\r\n", start)
        return int(head[start : stop if stop >= 0 else None])

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self._transport is not None
        line_end = head.find(b"\r\n")
        method, _, rest = head[: line_end if line_end >= 0 else None].partition(b" ")
        path = rest.rpartition(b" ")[0]
        if method == b"get" and path == b"/healthz":
            self._transport.write(HEALTH_REPLY)
        elif method == b"post" and path.endswith(b"/chat/completions"):
            if not any(mark in body for mark in _STREAM_MARKS):
                self._transport.write(JSON_REPLY)
            elif (long := _LONG_PATH.match(path)) is not None:
                self._start_long_stream(int(long.group(1)), int(long.group(2)) / 1000)
            else:
                self._transport.write(STREAM_REPLY)
        else:
            self._transport.write(NOT_FOUND)
        if b"connection: close" in head:
            self._transport.close()

    def _start_long_stream(self, chunks: int, seconds: float) -> None:
        assert self._transport is not None
        self._transport.write(STREAM_HEAD)
        interval = seconds / max(chunks, 1)
        loop = asyncio.get_running_loop()
        tail = render_stream_tail(chunks)

        def send(sent: int) -> None:
            if self._transport is None:
                return
            if sent < chunks:
                self._transport.write(TOKEN_CHUNK)
                self._streaming = loop.call_later(interval, send, sent + 1)
                return
            self._transport.write(tail)
            self._streaming = None
            self._serve()

        self._streaming = loop.call_later(0, send, 0)  # first token at once, the tail at `seconds`


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
