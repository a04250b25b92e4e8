"""Ollama's native API (https://github.com/ollama/ollama/blob/main/docs/api.md).

``POST /api/chat`` takes OpenAI-like messages, with images as bare base64 strings and
tool-call arguments as objects, and sampling settings under ``options``. Streams are
NDJSON: one JSON object per line, the last with ``"done": true`` and the token counts.
(Ollama's OpenAI-compatible ``/v1`` is served by the ``openai`` provider type.)
"""

from __future__ import annotations

from typing import Any, final

import orjson

from ..config.schema import FallbackReason
from ..errors import BadRequestError, UpstreamError
from .base import JSON, Chunk, Target, TranslatingDecoder, UpstreamRequest, Usage, stream_event

FINISH_REASONS = {"stop": "stop", "length": "length"}
OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}


def _content(index: int, content: Any) -> tuple[str, list[str]]:
    """OpenAI content → (text, base64 images); Ollama cannot fetch image URLs itself."""
    if isinstance(content, str) or content is None:
        return content or "", []
    text: list[str] = []
    images: list[str] = []
    for part in content:
        if part.get("type") == "text":
            text.append(part.get("text", ""))
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url", "") if isinstance(image, dict) else str(image)
            if not url.startswith("data:"):
                raise BadRequestError(
                    "the ollama provider accepts images only as base64 data URLs "
                    "(data:image/png;base64,...); inline the image instead of linking it",
                    param=f"messages[{index}].content",
                )
            images.append(url.partition(",")[2])
    return "".join(text), images


def _arguments(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments or {}
    try:
        return orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}


def convert_messages(messages: list[JSON]) -> list[JSON]:
    converted: list[JSON] = []
    names: dict[str, str] = {}  # tool_call_id → function name, for tool messages' tool_name
    for index, message in enumerate(messages):
        role = message.get("role")
        text, images = _content(index, message.get("content"))
        out: JSON = {"role": "system" if role == "developer" else role, "content": text}
        if images:
            out["images"] = images
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                names[str(call.get("id", ""))] = function.get("name", "")
                arguments = _arguments(function.get("arguments"))
                calls.append({"function": {"name": function.get("name", ""), "arguments": arguments}})
            out["tool_calls"] = calls
        if role == "tool" and (name := names.get(str(message.get("tool_call_id", "")))):
            out["tool_name"] = name
        converted.append(out)
    return converted


def _options(chat: JSON) -> JSON:
    options = {name: chat[source] for source, name in OPTIONS.items() if chat.get(source) is not None}
    max_tokens = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if max_tokens:
        options["num_predict"] = max_tokens
    stop = chat.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else list(stop)
    return options


def _format(chat: JSON) -> Any:
    response_format = chat.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or "json"
    if response_format.get("type") == "json_object":
        return "json"
    return None


def parse_usage(data: JSON) -> Usage:
    return Usage(
        input_tokens=int(data.get("prompt_eval_count") or 0),
        output_tokens=int(data.get("eval_count") or 0),
    )


def _tool_calls(message: JSON, first_index: int) -> list[JSON]:
    calls = []
    for offset, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        index = first_index + offset
        arguments = function.get("arguments")
        calls.append(
            {
                "index": index,
                "id": call.get("id") or f"call_{index}",
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else orjson.dumps(arguments or {}).decode(),
                },
            }
        )
    return calls


def _finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(reason or "stop", "stop")


def _headers(target: Target) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if target.api_key:  # a bearer token for Ollama behind an authenticating reverse proxy
        headers["authorization"] = "Bearer " + target.api_key
    headers.update(target.headers)
    return headers


def _raise_stream_error(data: JSON) -> None:
    if "error" in data:
        raise UpstreamError(f"ollama stream error: {data['error']}", reason=FallbackReason.SERVER_ERROR)


@final
class OllamaAdapter:
    speaks_openai = False

    def chat_request(self, chat: JSON, target: Target, *, stream: bool) -> UpstreamRequest:
        body: JSON = {
            "model": target.model,
            "messages": convert_messages(chat.get("messages") or []),
            "stream": stream,
        }
        if options := _options(chat):
            body["options"] = options
        if chat.get("tools"):
            body["tools"] = [t for t in chat["tools"] if t.get("type") == "function"]
        if (response_format := _format(chat)) is not None:
            body["format"] = response_format
        return UpstreamRequest(f"{target.base_url}/api/chat", _headers(target), orjson.dumps(body))

    def chat_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        data = orjson.loads(body)
        source = data.get("message") or {}
        calls = [{k: v for k, v in c.items() if k != "index"} for c in _tool_calls(source, 0)]
        message: JSON = {"role": "assistant", "content": source.get("content") or (None if calls else "")}
        if calls:
            message["tool_calls"] = calls
        usage = parse_usage(data)
        return {
            "id": "",
            "object": "chat.completion",
            "created": 0,
            "model": data.get("model", target.model),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": _finish_reason(data.get("done_reason"), bool(calls)),
                }
            ],
            "usage": usage.to_openai(),
        }, usage

    def stream_decoder(self, target: Target, *, include_usage: bool) -> OllamaStreamDecoder:
        return OllamaStreamDecoder(target.model, include_usage)

    def embeddings_request(self, body: JSON, target: Target) -> UpstreamRequest:
        request: JSON = {"model": target.model, "input": body.get("input")}
        if body.get("dimensions"):
            request["dimensions"] = body["dimensions"]
        return UpstreamRequest(f"{target.base_url}/api/embed", _headers(target), orjson.dumps(request))

    def embeddings_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        data = orjson.loads(body)
        usage = parse_usage(data)
        embeddings = [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(data.get("embeddings") or [])
        ]
        openai_usage = {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}
        return {
            "object": "list",
            "data": embeddings,
            "model": data.get("model", target.model),
            "usage": openai_usage,
        }, usage

    def error_message(self, status: int, body: bytes) -> str:
        try:
            error = orjson.loads(body).get("error")
        except (orjson.JSONDecodeError, AttributeError):
            error = None
        return str(error) if error else f"upstream answered HTTP {status}"


@final
class OllamaStreamDecoder(TranslatingDecoder[bytes]):
    """NDJSON lines → OpenAI chunks; the ``done`` line carries finish reason and usage."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._buffer = b""
        self._started = False
        self._tool_calls = 0

    def feed(self, data: bytes) -> list[Chunk]:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        return self._decode([line for line in lines if line.strip()])

    def finish(self) -> list[Chunk]:
        line, self._buffer = self._buffer, b""
        return self._decode([line] if line.strip() else [])

    def _on(self, line: bytes) -> list[Chunk]:
        return self._on_json(stream_event(line, "ollama"))

    def _on_json(self, data: JSON) -> list[Chunk]:
        _raise_stream_error(data)
        chunks: list[Chunk] = []
        if not self._started:
            self._started = True
            self._base["model"] = data.get("model", self._base["model"])
            chunks.append(self._chunk({"role": "assistant", "content": ""}))
        message = data.get("message") or {}
        if message.get("content"):
            chunks.append(self._chunk({"content": message["content"]}))
        if calls := _tool_calls(message, self._tool_calls):
            self._tool_calls += len(calls)
            chunks.append(self._chunk({"tool_calls": calls}))
        if data.get("done"):
            self.done = True
            self.usage = parse_usage(data)
            chunks.append(self._chunk({}, _finish_reason(data.get("done_reason"), self._tool_calls > 0)))
            if self._include_usage:
                chunks.append({**self._base, "choices": [], "usage": self.usage.to_openai()})
        return chunks
