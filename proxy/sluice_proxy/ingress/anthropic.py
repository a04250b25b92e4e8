"""The Anthropic Messages wire format as spoken by clients (``POST /v1/messages``).

Lets Anthropic-SDK applications use the gateway: a Messages request becomes the hub's
OpenAI shape, and answers, streams and errors go back as Anthropic's.
"""

from __future__ import annotations

import uuid
from typing import Any, final

import orjson

from .. import sse
from ..errors import BadRequestError, GatewayError
from ..providers.base import JSON, Chunk, Usage, text_of
from .base import ChatCall
from .openai import parse_json_object, require_model

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def _image_url(source: JSON) -> str:
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    return str(source.get("url", ""))


def _convert_message(index: int, message: Any) -> list[JSON]:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise BadRequestError(
            f"messages.{index}.role must be 'user' or 'assistant'", param=f"messages.{index}.role"
        )
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise BadRequestError(
            f"messages.{index}.content must be a string or a list of blocks",
            param=f"messages.{index}.content",
        )
    parts: list[JSON] = []
    tool_calls: list[JSON] = []
    results: list[JSON] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block.get("source") or {})}})
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            tool_calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": arguments},
                }
            )
        elif kind == "tool_result":
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id", ""),
                    "content": text_of(block.get("content")),
                }
            )
    converted: list[JSON] = list(results)
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        assistant: JSON = {"role": "assistant", "content": text or None}
        if tool_calls:
            assistant["tool_calls"] = tool_calls
        converted.append(assistant)
    elif parts:
        converted.append({"role": "user", "content": parts})
    return converted


def _tools(data: JSON) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if data.get("tools"):
        extra["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {},
                },
            }
            for t in data["tools"]
        ]
    choice = data.get("tool_choice") or {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        extra["tool_choice"] = "auto"
    elif kind == "any":
        extra["tool_choice"] = "required"
    elif kind == "none":
        extra["tool_choice"] = "none"
    elif kind == "tool":
        extra["tool_choice"] = {"type": "function", "function": {"name": choice.get("name", "")}}
    if kind and choice.get("disable_parallel_tool_use"):
        extra["parallel_tool_calls"] = False
    return extra


def anthropic_usage(usage: Usage) -> JSON:
    """Anthropic counts cache reads apart from ``input_tokens``; the hub's input includes them."""
    return {
        "input_tokens": usage.input_tokens - usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
    }


def render_error_body(error: GatewayError) -> JSON:
    kind = ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


@final
class AnthropicIngress:
    speaks_openai = False

    def parse_chat(self, body: bytes) -> ChatCall:
        data = parse_json_object(body)
        model = require_model(data)
        max_tokens = data.get("max_tokens")
        if max_tokens is None:
            raise BadRequestError(
                "max_tokens: Field required", param="max_tokens", code="missing_required_parameter"
            )
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequestError(
                "max_tokens must be a positive integer", param="max_tokens", code="invalid_type"
            )
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequestError("messages must be a non-empty list", param="messages", code="invalid_type")
        stream = data.get("stream", False)
        if not isinstance(stream, bool):
            raise BadRequestError("stream must be a boolean", param="stream", code="invalid_type")
        converted: list[JSON] = []
        if data.get("system"):
            converted.append({"role": "system", "content": text_of(data["system"])})
        for index, message in enumerate(messages):
            converted.extend(_convert_message(index, message))
        chat: JSON = {
            "model": model,
            "messages": converted,
            "max_tokens": max_tokens,
            "stream": stream,
            **_tools(data),
        }
        for source, target in (
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("stop_sequences", "stop"),
        ):
            if data.get(source) is not None:
                chat[target] = data[source]
        user = (data.get("metadata") or {}).get("user_id")
        if isinstance(user, str):
            chat["user"] = user
        # Anthropic streams always report usage, so the hub is always asked for it.
        return ChatCall(model=model, stream=stream, include_usage=True, body=chat)

    def render_response(self, response: JSON) -> bytes:
        choice = (response.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content: list[JSON] = []
        if message.get("content"):
            content.append({"type": "text", "text": message["content"]})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            try:
                arguments = orjson.loads(function.get("arguments") or "{}")
            except orjson.JSONDecodeError:
                arguments = {}
            content.append(
                {
                    "type": "tool_use",
                    "id": call.get("id", ""),
                    "name": function.get("name", ""),
                    "input": arguments,
                }
            )
        usage = response.get("usage") or {}
        return orjson.dumps(
            {
                "id": _message_id(response.get("id")),
                "type": "message",
                "role": "assistant",
                "model": response.get("model", ""),
                "content": content,
                "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
                "stop_sequence": None,
                "usage": anthropic_usage(
                    Usage(
                        input_tokens=int(usage.get("prompt_tokens") or 0),
                        output_tokens=int(usage.get("completion_tokens") or 0),
                        cached_input_tokens=int(
                            (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
                        ),
                    )
                ),
            }
        )

    def stream_encoder(self, *, model: str, include_usage: bool) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(model)

    def render_error(self, error: GatewayError) -> bytes:
        return orjson.dumps(render_error_body(error))


def _message_id(upstream_id: Any) -> str:
    text = str(upstream_id or "")
    return text if text.startswith("msg_") else "msg_" + (text.removeprefix("chatcmpl-") or uuid.uuid4().hex)


@final
class AnthropicStreamEncoder:
    """OpenAI chunks → the Messages event sequence (message_start … message_stop)."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._block: str | None = None  # "text" or "tool_use" while a block is open
        self._index = -1
        self._tool_blocks: dict[int, int] = {}
        self._stop_reason = "end_turn"

    def _event(self, name: str, payload: JSON) -> bytes:
        return sse.encode(orjson.dumps({"type": name, **payload}), name)

    def _start(self, chunk: JSON) -> bytes:
        self._started = True
        message: JSON = {
            "id": _message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return self._event("message_start", {"message": message})

    def _close_block(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return self._event("content_block_stop", {"index": self._index})

    def _open_block(self, kind: str, block: JSON) -> bytes:
        out = self._close_block()
        self._index += 1
        self._block = kind
        return out + self._event("content_block_start", {"index": self._index, "content_block": block})

    def chunk(self, chunk: Chunk) -> bytes:
        data: JSON = orjson.loads(chunk) if isinstance(chunk, bytes) else chunk
        out = b"" if self._started else self._start(data)
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._block != "text":
                    out += self._open_block("text", {"type": "text", "text": ""})
                out += self._event(
                    "content_block_delta",
                    {"index": self._index, "delta": {"type": "text_delta", "text": text}},
                )
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                if call.get("id"):
                    out += self._open_block(
                        "tool_use",
                        {"type": "tool_use", "id": call["id"], "name": function.get("name", ""), "input": {}},
                    )
                if function.get("arguments"):
                    out += self._event(
                        "content_block_delta",
                        {
                            "index": self._index,
                            "delta": {"type": "input_json_delta", "partial_json": function["arguments"]},
                        },
                    )
            if choice.get("finish_reason"):
                self._stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self, usage: Usage | None) -> bytes:
        out = b"" if self._started else self._start({})
        out += self._close_block()
        usage = usage or Usage()
        out += self._event(
            "message_delta",
            {
                "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                "usage": anthropic_usage(usage),
            },
        )
        return out + self._event("message_stop", {})

    def error(self, error: GatewayError) -> bytes:
        return sse.encode(orjson.dumps(render_error_body(error)), "error")
