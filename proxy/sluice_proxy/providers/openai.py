"""The OpenAI wire format: OpenAI, Azure OpenAI, Mistral, Groq, OpenRouter, vLLM, Ollama's /v1.

Where the client speaks OpenAI too, bodies pass through with only ``model`` (and, for
streams, ``stream_options``) changed, and streamed chunks are forwarded as the bytes the
upstream sent unless they must be touched.
"""

from __future__ import annotations

from typing import Final, final

import orjson

from .. import sse
from ..config.schema import ProviderType
from .base import JSON, Chunk, Target, UpstreamRequest, Usage

_USAGE_MARK: Final = b'"usage":{'


def _headers(target: Target) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if target.api_key:
        if target.type is ProviderType.AZURE_OPENAI:
            headers["api-key"] = target.api_key
        else:
            headers["authorization"] = "Bearer " + target.api_key
    headers.update(target.headers)
    return headers


def _url(target: Target, operation: str) -> str:
    base = target.base_url.rstrip("/")
    if target.type is ProviderType.AZURE_OPENAI:
        return f"{base}/openai/deployments/{target.model}/{operation}?api-version={target.api_version}"
    return f"{base}/{operation}"


def parse_usage(data: JSON | None) -> Usage:
    if not data:
        return Usage()
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(data.get("prompt_tokens") or 0),
        output_tokens=int(data.get("completion_tokens") or 0),
        cached_input_tokens=int(details.get("cached_tokens") or 0),
    )


@final
class OpenAIAdapter:
    speaks_openai = True

    def chat_request(self, chat: JSON, target: Target, *, stream: bool) -> UpstreamRequest:
        body = dict(chat)
        body["model"] = target.model
        if stream:
            # Ask for the usage chunk so streamed responses are costed; the decoder drops
            # it again when the client did not ask for it.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return UpstreamRequest(_url(target, "chat/completions"), _headers(target), orjson.dumps(body))

    def chat_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        data = orjson.loads(body)
        return data, parse_usage(data.get("usage"))

    def stream_decoder(self, target: Target, *, include_usage: bool) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(include_usage)

    def embeddings_request(self, body: JSON, target: Target) -> UpstreamRequest:
        return UpstreamRequest(
            _url(target, "embeddings"), _headers(target), orjson.dumps({**body, "model": target.model})
        )

    def embeddings_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        data = orjson.loads(body)
        return data, parse_usage(data.get("usage"))

    def error_message(self, status: int, body: bytes) -> str:
        try:
            data = orjson.loads(body)
            message = data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("error")
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
            message = None
        return str(message) if message else f"upstream answered HTTP {status}"


@final
class OpenAIStreamDecoder:
    """Forwards OpenAI SSE chunks as raw bytes; parses only the one that carries usage."""

    __slots__ = ("_include_usage", "_parser", "done", "usage")

    def __init__(self, include_usage: bool) -> None:
        self._include_usage = include_usage
        self._parser = sse.SSEParser()
        self.usage: Usage | None = None
        self.done = False

    def feed(self, data: bytes) -> list[Chunk]:
        return self._chunks(self._parser.feed(data))

    def passthrough(self, data: bytes) -> int:
        if self._parser.pending or b"\r" in data:
            return 0  # half an event waits in the parser, or CRLF framing to normalise
        end = data.rfind(b"\n\n") + 2  # after the last whole event
        for mark in (_USAGE_MARK, b"[DONE]"):
            # The event carrying usage or the end is read; those before it pass as they came.
            if (at := data.find(mark, 0, end)) >= 0:
                end = data.rfind(b"\n\n", 0, at) + 2
        return end if end >= 2 else 0

    def finish(self) -> list[Chunk]:
        return self._chunks(self._parser.finish())

    def _chunks(self, events: list[sse.Event]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for event in events:
            data = event.data
            if data == b"[DONE]":
                self.done = True
                continue
            if _USAGE_MARK in data:
                parsed = orjson.loads(data)
                self.usage = parse_usage(parsed.get("usage"))
                if not self._include_usage:
                    if not parsed.get("choices"):
                        continue  # the usage-only chunk the client did not ask for
                    parsed["usage"] = None
                    chunks.append(parsed)
                    continue
            chunks.append(data)
        return chunks
