"""The Gemini API wire format (https://ai.google.dev/api/generate-content).

OpenAI-shaped chat requests become ``generateContent`` requests: system prompts move to
``systemInstruction``, turns become ``contents`` with the roles ``user`` and ``model``,
tool calls become ``functionCall`` parts and tool results ``functionResponse`` parts.
Streams use ``:streamGenerateContent?alt=sse``: every SSE event is a whole
``GenerateContentResponse`` and there is no end marker, so the stream is complete when
the upstream closes it after a candidate reported its ``finishReason``.
"""

from __future__ import annotations

import mimetypes
from typing import Any, final

import orjson

from .. import sse
from ..config.schema import FallbackReason
from ..errors import BadRequestError, UpstreamError
from .base import JSON, Chunk, Target, TranslatingDecoder, UpstreamRequest, Usage, stream_event, text_of

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def _image_part(url: str) -> JSON:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return {"inlineData": {"mimeType": header[5:].split(";")[0] or "image/png", "data": data}}
    mime_type = mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime_type, "fileUri": url}}


def _parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[JSON] = []
    for part in content or []:
        if part.get("type") == "text":
            parts.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            image = part.get("image_url") or {}
            parts.append(_image_part(image.get("url", "") if isinstance(image, dict) else str(image)))
    return parts


def _json_object(text: Any, key: str) -> JSON:
    """``text`` parsed as a JSON object, else wrapped as ``{key: text}`` (Gemini wants objects)."""
    if isinstance(text, dict):
        return text
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {key: text}
    return value if isinstance(value, dict) else {key: value}


def convert_messages(messages: list[JSON]) -> tuple[JSON | None, list[JSON]]:
    """OpenAI messages → (``systemInstruction``, ``contents``), same-role turns merged."""
    system: list[JSON] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}  # tool_call_id → function name: functionResponse needs the name
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
            continue
        if role == "tool":
            call_id = str(message.get("tool_call_id", ""))
            response = _json_object(text_of(message.get("content")), "content")
            role, parts = (
                "user",
                [{"functionResponse": {"name": names.get(call_id, call_id), "response": response}}],
            )
        elif role == "assistant":
            role, parts = "model", _parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                names[str(call.get("id", ""))] = function.get("name", "")
                arguments = _json_object(function.get("arguments"), "arguments")
                parts.append({"functionCall": {"name": function.get("name", ""), "args": arguments}})
        else:
            role, parts = "user", _parts(message.get("content"))
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return ({"parts": system} if system else None), contents


def _tools(chat: JSON) -> tuple[list[JSON] | None, JSON | None]:
    declarations = []
    for tool in chat.get("tools") or []:
        if tool.get("type") != "function":
            continue
        function = tool["function"]
        declaration: JSON = {"name": function["name"], "description": function.get("description", "")}
        if function.get("parameters"):
            # Full JSON Schema (OpenAI's dialect, additionalProperties and all); ``parameters``
            # would take only Google's OpenAPI subset.
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    choice = chat.get("tool_choice")
    config: JSON | None = None
    if isinstance(choice, str) and choice in TOOL_MODES:
        config = {"functionCallingConfig": {"mode": TOOL_MODES[choice]}}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = choice["function"]["name"]
        config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return ([{"functionDeclarations": declarations}] if declarations else None), config


def _generation_config(chat: JSON) -> JSON:
    config: JSON = {}
    for source, name in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if chat.get(source) is not None:
            config[name] = chat[source]
    max_tokens = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stop = chat.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = chat.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    return config


def parse_usage(metadata: JSON | None) -> Usage:
    """``promptTokenCount`` already includes cached tokens; thinking tokens are billed as output."""
    metadata = metadata or {}
    return Usage(
        input_tokens=int(metadata.get("promptTokenCount") or 0),
        output_tokens=int(metadata.get("candidatesTokenCount") or 0)
        + int(metadata.get("thoughtsTokenCount") or 0),
        cached_input_tokens=int(metadata.get("cachedContentTokenCount") or 0),
    )


def _model_path(target: Target) -> str:
    return target.model if target.model.startswith(("models/", "tunedModels/")) else f"models/{target.model}"


def _headers(target: Target) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if target.api_key:
        headers["x-goog-api-key"] = target.api_key
    headers.update(target.headers)
    return headers


def _finish_reason(reason: str | None, has_tool_calls: bool) -> str:
    if has_tool_calls and reason in (None, "STOP"):
        return "tool_calls"
    return FINISH_REASONS.get(reason or "STOP", "stop")


def _tool_call(part: JSON, index: int) -> JSON:
    call = part["functionCall"]
    return {
        "id": call.get("id") or f"call_{index}",
        "type": "function",
        "function": {
            "name": call.get("name", ""),
            "arguments": orjson.dumps(call.get("args") or {}).decode(),
        },
    }


def _candidate_parts(data: JSON) -> tuple[JSON, list[JSON]]:
    candidates = data.get("candidates") or [{}]
    candidate: JSON = candidates[0]
    return candidate, (candidate.get("content") or {}).get("parts") or []


def _blocked_reason(data: JSON) -> str | None:
    """Prompts Gemini refuses come back without candidates, with ``promptFeedback.blockReason``."""
    if data.get("candidates"):
        return None
    return str((data.get("promptFeedback") or {}).get("blockReason") or "") or None


@final
class GeminiAdapter:
    speaks_openai = False

    def chat_request(self, chat: JSON, target: Target, *, stream: bool) -> UpstreamRequest:
        system, contents = convert_messages(chat.get("messages") or [])
        body: JSON = {"contents": contents}
        if system:
            body["systemInstruction"] = system
        if config := _generation_config(chat):
            body["generationConfig"] = config
        tools, tool_config = _tools(chat)
        if tools:
            body["tools"] = tools
        if tool_config:
            body["toolConfig"] = tool_config
        operation = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = f"{target.base_url}/v1beta/{_model_path(target)}:{operation}"
        return UpstreamRequest(url, _headers(target), orjson.dumps(body))

    def chat_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        data = orjson.loads(body)
        candidate, parts = _candidate_parts(data)
        text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
        tool_calls = [_tool_call(p, i) for i, p in enumerate(p for p in parts if "functionCall" in p)]
        message: JSON = {"role": "assistant", "content": text or (None if tool_calls else "")}
        if tool_calls:
            message["tool_calls"] = tool_calls
        blocked = _blocked_reason(data)
        finish = (
            "content_filter" if blocked else _finish_reason(candidate.get("finishReason"), bool(tool_calls))
        )
        usage = parse_usage(data.get("usageMetadata"))
        return {
            "id": data.get("responseId", ""),
            "object": "chat.completion",
            "created": 0,
            "model": data.get("modelVersion", target.model),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage.to_openai(),
        }, usage

    def stream_decoder(self, target: Target, *, include_usage: bool) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(target.model, include_usage)

    def embeddings_request(self, body: JSON, target: Target) -> UpstreamRequest:
        inputs = body.get("input")
        texts = inputs if isinstance(inputs, list) else [inputs]
        if not all(isinstance(text, str) for text in texts):
            raise BadRequestError(
                f"provider '{target.provider}' (gemini) embeds text only; send input as a string or a list of strings",
                param="input",
            )
        model = _model_path(target)
        request: JSON = {"model": model}
        if body.get("dimensions"):
            request["outputDimensionality"] = body["dimensions"]
        requests = [{**request, "content": {"parts": [{"text": text}]}} for text in texts]
        url = f"{target.base_url}/v1beta/{model}:batchEmbedContents"
        return UpstreamRequest(url, _headers(target), orjson.dumps({"requests": requests}))

    def embeddings_response(self, body: bytes, target: Target) -> tuple[JSON, Usage]:
        data = orjson.loads(body)
        embeddings = [
            {"object": "embedding", "index": i, "embedding": e.get("values") or []}
            for i, e in enumerate(data.get("embeddings") or [])
        ]
        # batchEmbedContents reports no token counts.
        openai_usage = {"prompt_tokens": 0, "total_tokens": 0}
        return {"object": "list", "data": embeddings, "model": target.model, "usage": openai_usage}, Usage()

    def error_message(self, status: int, body: bytes) -> str:
        try:
            data = orjson.loads(body)
            error = (data[0] if isinstance(data, list) else data).get("error") or {}
            return str(error.get("message") or f"upstream answered HTTP {status}")
        except (orjson.JSONDecodeError, AttributeError, IndexError):
            return f"upstream answered HTTP {status}"


@final
class GeminiStreamDecoder(TranslatingDecoder[sse.Event]):
    """``alt=sse`` events (each a whole GenerateContentResponse) → OpenAI chunks."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._parser = sse.SSEParser()
        self._started = False
        self._tool_calls = 0
        self._finish: str | None = None

    def feed(self, data: bytes) -> list[Chunk]:
        return self._decode(self._parser.feed(data))

    def finish(self) -> list[Chunk]:
        chunks = self._decode(self._parser.finish())
        if self._finish is None:
            return chunks  # closed before a finishReason: not done, the relay reports it
        self.done = True
        chunks.append(self._chunk({}, self._finish))
        if self._include_usage:
            usage = self.usage or Usage()
            chunks.append({**self._base, "choices": [], "usage": usage.to_openai()})
        return chunks

    def _on(self, event: sse.Event) -> list[Chunk]:
        data = stream_event(event.data, "gemini")
        if "error" in data:
            error = data["error"] or {}
            raise UpstreamError(
                f"gemini stream error: {error.get('message', 'unknown')}",
                reason=FallbackReason.SERVER_ERROR if int(error.get("code") or 500) >= 500 else None,
            )
        chunks: list[Chunk] = []
        if not self._started:
            self._started = True
            self._base["id"] = data.get("responseId", "")
            self._base["model"] = data.get("modelVersion", self._base["model"])
            chunks.append(self._chunk({"role": "assistant", "content": ""}))
        if data.get("usageMetadata"):
            # Every event repeats the running totals; the last one is final.
            self.usage = parse_usage(data["usageMetadata"])
        candidate, parts = _candidate_parts(data)
        text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
        if text:
            chunks.append(self._chunk({"content": text}))
        calls = []
        for part in parts:
            if "functionCall" in part:
                calls.append({"index": self._tool_calls, **_tool_call(part, self._tool_calls)})
                self._tool_calls += 1
        if calls:
            chunks.append(self._chunk({"tool_calls": calls}))
        if _blocked_reason(data):
            self._finish = "content_filter"
        elif candidate.get("finishReason"):
            self._finish = _finish_reason(candidate["finishReason"], self._tool_calls > 0)
        return chunks
