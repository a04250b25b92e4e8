"""HTTP/1.1 on the client side: pre-rendered requests and an incremental response parser."""

from __future__ import annotations

import socket
import time
from typing import Final

HOST: Final = "127.0.0.1"


def render_post(port: int, path: str, body: bytes, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def render_get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


class ResponseParser:
    """Feed it bytes; it knows the status, when the body began and when the response ended."""

    __slots__ = (
        "_buffer",
        "_chunked",
        "_crlf",
        "_remaining",
        "body",
        "done",
        "got_body",
        "keep_body",
        "status",
    )

    def __init__(self, keep_body: bool = False) -> None:
        self._buffer = bytearray()
        self._chunked = False
        self._remaining = 0
        """Body bytes still expected; for chunked bodies -1 means a chunk-size line is next."""
        self._crlf = 0
        """Bytes of the CRLF ending the current chunk still to skip."""
        self.status = 0
        self.got_body = False
        self.done = False
        self.keep_body = keep_body
        self.body = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while not self.done and self._buffer:
            if self.status == 0:
                if not self._read_head():
                    return
            elif self._chunked and self._remaining < 0:
                if not self._read_chunk_size():
                    return
            else:
                self._read_body()

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).lower()
        del self._buffer[: end + 4]
        self.status = int(head[9:12])
        if b"transfer-encoding: chunked" in head:
            self._chunked, self._remaining = True, -1
            return True
        start = head.find(b"content-length:")
        if start < 0:
            raise ValueError("the response has neither Content-Length nor chunked encoding")
        stop = head.find(b"\r\n", start)
        self._remaining = int(head[start + len(b"content-length:") : stop if stop >= 0 else None])
        self.done = self._remaining == 0
        return True

    def _read_chunk_size(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        size = int(bytes(self._buffer[:end]).split(b";")[0], 16)
        if size == 0:
            # The last chunk; no trailers are sent by any server under test.
            self.done = len(self._buffer) >= end + 4
            return self.done
        del self._buffer[: end + 2]
        self._remaining, self._crlf = size, 2
        return True

    def _read_body(self) -> None:
        if self._remaining == 0:  # only in chunked bodies: the CRLF after a chunk's data
            skip = min(len(self._buffer), self._crlf)
            del self._buffer[:skip]
            self._crlf -= skip
            if self._crlf == 0:
                self._remaining = -1
            return
        take = min(len(self._buffer), self._remaining)
        if self.keep_body:
            self.body += self._buffer[:take]
        del self._buffer[:take]
        self._remaining -= take
        self.got_body = True
        if self._remaining == 0 and not self._chunked:
            self.done = True


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def exchange(sock: socket.socket, request: bytes, keep_body: bool = False) -> ResponseParser:
    """Send one request on a keep-alive socket and read the whole response."""
    sock.sendall(request)
    parser = ResponseParser(keep_body)
    while not parser.done:
        data = sock.recv(262_144)
        if not data:
            raise ConnectionError("the server closed the connection mid-response")
        parser.feed(data)
    return parser


def timed_exchange(sock: socket.socket, request: bytes) -> tuple[float, int]:
    """(seconds, status) of one request."""
    started = time.perf_counter()
    parser = exchange(sock, request)
    return time.perf_counter() - started, parser.status
