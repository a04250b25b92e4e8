"""What every upstream wire format implements.

Sluice uses one canonical vocabulary, OpenAI's chat-completions shape, as the hub: a
client request is turned into an OpenAI-shaped ``dict`` by its ingress, each adapter
turns that into its own wire format and turns the answer back into OpenAI's shape.
Adapters are pure: no sockets, clocks or globals; the caller does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import orjson

from ..config.schema import Pricing, ProviderType
from ..errors import UpstreamError

JSON = dict[str, Any]
# A streamed chunk in OpenAI's chat.completion.chunk shape: a dict, or the same already
# JSON-encoded (bytes) when it passes through from an OpenAI-format upstream untouched.
Chunk = JSON | bytes


@dataclass(frozen=True, slots=True)
class Target:
    """One backend with everything an adapter needs, bound at config load."""

    provider: str
    type: ProviderType
    base_url: str
    model: str
    api_key: str | None = None
    api_version: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    pricing: Pricing | None = None


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    method: str

    def __init__(self, url: str, headers: dict[str, str], body: bytes, method: str = "POST") -> None:
        self.url = url
        self.headers = headers
        self.body = body
        self.method = method


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class Usage:
    """Token counts of one response, as the provider reported them."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int

    def __init__(self, input_tokens: int = 0, output_tokens: int = 0, cached_input_tokens: int = 0) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cached_input_tokens = cached_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_openai(self) -> JSON:
        usage: JSON = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_input_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_input_tokens}
        return usage


class StreamDecoder(Protocol):
    """Turns an upstream's streamed bytes into OpenAI chunks; one per request, stateful."""

    usage: Usage | None
    """The stream's usage once the upstream has reported it."""

    def feed(self, data: bytes) -> list[Chunk]:
        """Chunks completed by ``data`` (which may split events anywhere)."""
        ...

    def finish(self) -> list[Chunk]:
        """Chunks still buffered when the upstream closed the stream cleanly."""
        ...

    @property
    def done(self) -> bool:
        """True once the upstream signalled the end of the stream."""
        ...

    def passthrough(self, data: bytes) -> int:
        """How many leading bytes of ``data`` are whole OpenAI SSE events an OpenAI client can take
        as they are (no usage, no end, no event split across reads); the rest goes through ``feed``."""
        ...


class Adapter(Protocol):
    """One upstream wire format."""

    speaks_openai: bool
    """True when its non-streamed answers are OpenAI's as they are, so an OpenAI client can take
    the upstream's bytes without a re-encode."""

    def chat_request(self, chat: JSON, target: Target, *, stream: bool) -> UpstreamRequest: ...

    def chat_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        """The upstream's non-streamed answer as an OpenAI ``chat.completion``."""
        ...

    def stream_decoder(self, target: Target, *, include_usage: bool) -> StreamDecoder:
        """``include_usage``: whether the client asked for OpenAI's final usage chunk."""
        ...

    def embeddings_request(self, body: JSON, target: Target) -> UpstreamRequest:
        """Raises BadRequestError when the format has no embeddings endpoint."""
        ...

    def embeddings_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]: ...

    def error_message(self, status: int, body: bytes) -> str:
        """The human message inside an upstream error body (never echoes credentials)."""
        ...


def stream_event(data: bytes, source: str) -> JSON:
    """One streamed event's JSON object; garbage from the upstream ends the stream with an error."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"{source} sent a stream event that is not JSON: {data[:80]!r}", reason=None
        ) from None
    if not isinstance(value, dict):
        raise UpstreamError(
            f"{source} sent a stream event that is not a JSON object: {data[:80]!r}", reason=None
        )
    return value


EventT = TypeVar("EventT")


class TranslatingDecoder(Generic[EventT]):
    """What decoders that translate another format into OpenAI chunks share.

    Subclasses parse their framing into events and turn one event into chunks in ``_on``.
    """

    def __init__(self, model: str, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._base: JSON = {"id": "", "object": "chat.completion.chunk", "created": 0, "model": model}
        self._error: UpstreamError | None = None
        self.usage: Usage | None = None
        self.done = False

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {**self._base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _on(self, event: EventT) -> list[Chunk]:
        raise NotImplementedError

    def passthrough(self, data: bytes) -> int:
        return 0  # another format: always translated

    def _decode(self, events: Iterable[EventT]) -> list[Chunk]:
        """Chunks of ``events``. An upstream error that follows some chunks is raised on the next
        call instead, so the client still gets the text before it (providers close after one)."""
        if self._error is not None:
            raise self._error
        chunks: list[Chunk] = []
        for event in events:
            try:
                chunks.extend(self._on(event))
            except UpstreamError as error:
                if not chunks:
                    raise
                self._error = error
                break
        return chunks


def text_of(content: Any) -> str:
    """The text of message content: a string, or the text parts of a list of parts or blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""
