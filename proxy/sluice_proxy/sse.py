"""Pure Server-Sent Events framing: bytes ⇄ events (https://html.spec.whatwg.org/#server-sent-events)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class Event:
    data: bytes
    event: str | None

    def __init__(self, data: bytes, event: str | None = None) -> None:
        self.data = data
        self.event = event


class SSEParser:
    """Incremental parser: feed arbitrary byte slices, get complete events."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def pending(self) -> bool:
        """Whether part of an event waits for the rest."""
        return bool(self._buffer)

    def feed(self, data: bytes) -> list[Event]:
        buffer = self._buffer + data if self._buffer else data
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # may be the first half of a CRLF split across reads
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *blocks, rest = buffer.split(b"\n\n")
        self._buffer = rest + held
        events = []
        for block in blocks:
            if event := _parse_block(block):
                events.append(event)
        return events

    def finish(self) -> list[Event]:
        """Events left when the stream ended without a trailing blank line."""
        block, self._buffer = self._buffer.replace(b"\r", b"\n"), b""
        event = _parse_block(block) if block.strip() else None
        return [event] if event else []


def _parse_block(block: bytes) -> Event | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return Event(block[6:])  # what LLM providers send: one data line per event
    data: list[bytes] = []
    name: str | None = None
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        fieldname, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if fieldname == b"data":
            data.append(value)
        elif fieldname == b"event":
            name = value.decode()
    if not data and name is None:
        return None
    return Event(b"\n".join(data), name)


def encode(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame; ``data`` must not contain newlines (JSON from orjson never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
