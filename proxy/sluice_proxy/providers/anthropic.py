"""The Anthropic Messages wire format (https://docs.anthropic.com/en/api/messages).

OpenAI-shaped chat requests become Messages requests: system prompts move to the
top-level ``system``, tool calls become ``tool_use`` blocks and tool results
``tool_result`` blocks, and consecutive turns of one role are merged (Anthropic requires
alternation). Answers and streams come back in OpenAI's shape.
"""

from __future__ import annotations

from typing import Any, final

import orjson

from .. import sse
from ..config.schema import FallbackReason
from ..errors import BadRequestError, UpstreamError
from .base import JSON, Chunk, Target, TranslatingDecoder, UpstreamRequest, Usage, stream_event, text_of

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def _image_block(url: str) -> JSON:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _content_blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[JSON] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            blocks.append(_image_block(image.get("url", "") if isinstance(image, dict) else str(image)))
    return blocks


def _tool_input(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        return orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}


def convert_messages(messages: list[JSON]) -> tuple[str | None, list[JSON]]:
    """OpenAI messages → (Anthropic ``system``, alternating Anthropic messages)."""
    system: list[str] = []
    converted: list[JSON] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content")))
            continue
        if role == "tool":
            role, blocks = (
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id", ""),
                        "content": text_of(message.get("content")),
                    }
                ],
            )
        elif role == "assistant":
            blocks = _content_blocks(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": function.get("name", ""),
                        "input": _tool_input(function.get("arguments")),
                    }
                )
        else:
            role, blocks = "user", _content_blocks(message.get("content"))
        if converted and converted[-1]["role"] == role:
            converted[-1]["content"].extend(blocks)
        else:
            converted.append({"role": role, "content": blocks})
    return ("\n\n".join(system) if system else None), converted


def _tools(chat: JSON) -> tuple[list[JSON] | None, JSON | None]:
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"].get("description", ""),
            "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}},
        }
        for t in chat.get("tools") or []
        if t.get("type") == "function"
    ]
    choice = chat.get("tool_choice")
    mapped: JSON | None = None
    if choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        mapped = {"type": "tool", "name": choice["function"]["name"]}
    if tools and chat.get("parallel_tool_calls") is False and (mapped or {}).get("type") != "none":
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    return (tools or None), mapped


def parse_usage(usage: JSON | None) -> Usage:
    usage = usage or {}
    cached = int(usage.get("cache_read_input_tokens") or 0)
    created = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0) + cached + created,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=cached,
    )


@final
class AnthropicAdapter:
    speaks_openai = False

    def chat_request(self, chat: JSON, target: Target, *, stream: bool) -> UpstreamRequest:
        system, messages = convert_messages(chat.get("messages") or [])
        body: JSON = {
            "model": target.model,
            "messages": messages,
            "max_tokens": chat.get("max_completion_tokens") or chat.get("max_tokens") or DEFAULT_MAX_TOKENS,
        }
        if system:
            body["system"] = system
        for name in ("temperature", "top_p"):
            if chat.get(name) is not None:
                body[name] = chat[name]
        stop = chat.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        tools, tool_choice = _tools(chat)
        if tools:
            body["tools"] = tools
        if tool_choice:
            body["tool_choice"] = tool_choice
        if isinstance(chat.get("user"), str):
            body["metadata"] = {"user_id": chat["user"]}
        if stream:
            body["stream"] = True
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if target.api_key:
            headers["x-api-key"] = target.api_key
        headers.update(target.headers)
        return UpstreamRequest(f"{target.base_url}/v1/messages", headers, orjson.dumps(body))

    def chat_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        data = orjson.loads(body)
        text = "".join(b.get("text", "") for b in data.get("content") or [] if b.get("type") == "text")
        tool_calls = [
            {
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": orjson.dumps(b.get("input") or {}).decode()},
            }
            for b in data.get("content") or []
            if b.get("type") == "tool_use"
        ]
        message: JSON = {"role": "assistant", "content": text or (None if tool_calls else "")}
        if tool_calls:
            message["tool_calls"] = tool_calls
        usage = parse_usage(data.get("usage"))
        return {
            "id": data.get("id", ""),
            "object": "chat.completion",
            "created": 0,
            "model": data.get("model", target.model),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": FINISH_REASONS.get(data.get("stop_reason") or "", "stop"),
                }
            ],
            "usage": usage.to_openai(),
        }, usage

    def stream_decoder(self, target: Target, *, include_usage: bool) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(target.model, include_usage)

    def embeddings_request(self, body: JSON, target: Target) -> UpstreamRequest:
        raise BadRequestError(
            f"provider '{target.provider}' (anthropic) has no embeddings API; route this model to another provider",
            param="model",
        )

    def embeddings_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        raise BadRequestError("anthropic has no embeddings API", param="model")

    def error_message(self, status: int, body: bytes) -> str:
        try:
            error = orjson.loads(body).get("error") or {}
            return str(error.get("message") or f"upstream answered HTTP {status}")
        except (orjson.JSONDecodeError, AttributeError):
            return f"upstream answered HTTP {status}"


@final
class AnthropicStreamDecoder(TranslatingDecoder[sse.Event]):
    """Messages SSE events → OpenAI chunks. ``message_delta`` usage is cumulative."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._parser = sse.SSEParser()
        self._tool_index: dict[int, int] = {}
        self._input = self._cached = self._output = 0

    def feed(self, data: bytes) -> list[Chunk]:
        return self._decode(self._parser.feed(data))

    def finish(self) -> list[Chunk]:
        return self._decode(self._parser.finish())

    def _on(self, event: sse.Event) -> list[Chunk]:
        data = stream_event(event.data, "anthropic") if event.data else {}
        kind = data.get("type") or event.event
        if kind == "message_start":
            message = data.get("message") or {}
            self._base["id"] = message.get("id", "")
            self._base["model"] = message.get("model", self._base["model"])
            usage = parse_usage(message.get("usage"))
            self._input, self._cached, self._output = (
                usage.input_tokens,
                usage.cached_input_tokens,
                usage.output_tokens,
            )
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tool_index.setdefault(data.get("index", 0), len(self._tool_index))
                call = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self._tool_index.get(data.get("index", 0), 0)
                call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            counts: JSON = data.get("usage") or {}
            if counts.get("output_tokens") is not None:
                self._output = int(counts["output_tokens"])
            if counts.get("input_tokens") is not None:
                update = parse_usage(counts)
                self._input, self._cached = update.input_tokens, update.cached_input_tokens
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, FINISH_REASONS.get(reason or "", "stop"))] if reason else []
        if kind == "message_stop":
            self.done = True
            self.usage = Usage(self._input, self._output, self._cached)
            if self._include_usage:
                return [{**self._base, "choices": [], "usage": self.usage.to_openai()}]
            return []
        if kind == "error":
            error = data.get("error") or {}
            overloaded = error.get("type") in ("overloaded_error", "api_error", "rate_limit_error")
            self.usage = Usage(self._input, self._output, self._cached)
            raise UpstreamError(
                f"anthropic stream error: {error.get('message', 'unknown')}",
                reason=FallbackReason.SERVER_ERROR if overloaded else None,
            )
        return []  # ping, content_block_stop
