"""What a client wire format implements: parse requests, render answers, streams and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import GatewayError
from ..providers.base import JSON, Chunk, Usage


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class ChatCall:
    """A parsed client chat request in the hub (OpenAI) shape."""

    model: str
    stream: bool
    include_usage: bool
    body: JSON

    def __init__(self, model: str, stream: bool, include_usage: bool, body: JSON) -> None:
        self.model = model
        self.stream = stream
        self.include_usage = include_usage
        self.body = body


class StreamEncoder(Protocol):
    """Turns OpenAI chunks into the client's stream format; one per response, stateful."""

    def chunk(self, chunk: Chunk) -> bytes: ...

    def finish(self, usage: Usage | None) -> bytes: ...

    def error(self, error: GatewayError) -> bytes: ...


class Ingress(Protocol):
    speaks_openai: bool
    """True when the client speaks OpenAI's format: an OpenAI upstream's answer, and its SSE
    events (see StreamDecoder.passthrough), go to it as they came."""

    def parse_chat(self, body: bytes) -> ChatCall: ...

    def render_response(self, response: JSON) -> bytes: ...

    def stream_encoder(self, *, model: str, include_usage: bool) -> StreamEncoder: ...

    def render_error(self, error: GatewayError) -> bytes: ...
