"""The OpenAI wire format as spoken by clients (/v1/chat/completions, /v1/embeddings)."""

from __future__ import annotations

from typing import Any, Final, final

import orjson

from .. import sse
from ..errors import BadRequestError, GatewayError
from ..providers.base import JSON, Chunk, Usage
from .base import ChatCall

_DONE: Final = b"data: [DONE]\n\n"


def parse_json_object(body: bytes) -> JSON:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not body:
        raise BadRequestError("the request body is empty; send a JSON object", code="invalid_json")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"the request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequestError("the request body must be a JSON object", code="invalid_json")
    return data


def require_model(data: JSON) -> str:
    model = data.get("model")
    if model is None:
        raise BadRequestError(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str) or not model:
        raise BadRequestError("model must be a non-empty string", param="model", code="invalid_type")
    return model


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise BadRequestError(
            "you must provide a messages parameter", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("messages must be a non-empty array", param="messages", code="invalid_type")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequestError(
                f"messages[{i}] must be an object", param=f"messages[{i}]", code="invalid_type"
            )
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool", "function"):
            raise BadRequestError(
                f"messages[{i}].role must be one of system, developer, user, assistant, tool (got {role!r})",
                param=f"messages[{i}].role",
                code="invalid_value",
            )


@final
class OpenAIIngress:
    speaks_openai = True

    def parse_chat(self, body: bytes) -> ChatCall:
        data = parse_json_object(body)
        model = require_model(data)
        _check_messages(data.get("messages"))
        stream = data.get("stream", False)
        if not isinstance(stream, bool):
            raise BadRequestError("stream must be a boolean", param="stream", code="invalid_type")
        options = data.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise BadRequestError(
                "stream_options must be an object", param="stream_options", code="invalid_type"
            )
        include_usage = bool(options and options.get("include_usage"))
        return ChatCall(model=model, stream=stream, include_usage=include_usage, body=data)

    def render_response(self, response: JSON) -> bytes:
        return orjson.dumps(response)

    def stream_encoder(self, *, model: str, include_usage: bool) -> OpenAIStreamEncoder:
        return OpenAIStreamEncoder()

    def render_error(self, error: GatewayError) -> bytes:
        return orjson.dumps(error_body(error))


def error_body(error: GatewayError) -> JSON:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}


@final
class OpenAIStreamEncoder:
    __slots__ = ()

    def chunk(self, chunk: Chunk) -> bytes:
        return sse.encode(chunk if isinstance(chunk, bytes) else orjson.dumps(chunk))

    def finish(self, usage: Usage | None) -> bytes:
        return _DONE

    def error(self, error: GatewayError) -> bytes:
        # The OpenAI SDK raises APIError when a data event carries an "error" key.
        return sse.encode(orjson.dumps(error_body(error))) + _DONE
