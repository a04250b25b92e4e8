"""The /v1/messages ingress: Anthropic requests in, Anthropic messages, events and errors out."""

from __future__ import annotations

from typing import Any

import orjson
import pydantic
import pytest
from anthropic.types import Message, RawMessageStreamEvent

from sluice_proxy import errors, sse
from sluice_proxy.config.schema import FallbackReason, ProviderType
from sluice_proxy.ingress.anthropic import AnthropicIngress
from sluice_proxy.providers.anthropic import AnthropicAdapter
from sluice_proxy.providers.base import Usage
from tests.unit.providers.wire import load, raw, target

INGRESS = AnthropicIngress()
EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)


def events(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """SSE bytes → (event name, payload), each payload validated by the Anthropic SDK's types."""
    parsed = []
    for event in sse.SSEParser().feed(data):
        payload = orjson.loads(event.data)
        if event.event != "error":
            EVENT.validate_python(payload)
        assert payload["type"] == event.event, "the SSE event name and the payload type must agree"
        parsed.append((event.event, payload))
    return parsed


def test_round_trip_through_the_hub_reproduces_the_messages_request() -> None:
    """Anthropic client → hub (OpenAI shape) → Anthropic upstream is lossless for these features."""
    request = load("anthropic/chat_request.json")
    call = INGRESS.parse_chat(orjson.dumps(request))
    assert (call.model, call.stream, call.include_usage) == ("claude-sonnet-4-5", False, True)
    upstream = AnthropicAdapter().chat_request(
        call.body, target(ProviderType.ANTHROPIC, "claude-sonnet-4-5"), stream=False
    )
    assert orjson.loads(upstream.body) == request


def test_request_becomes_the_hub_shape() -> None:
    call = INGRESS.parse_chat(raw("anthropic/chat_request.json"))
    assert call.body["messages"] == [
        {"role": "system", "content": "You are terse.\n\nUse metric units."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is the weather here?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"celsius":18}'},
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
    ]
    assert (
        call.body["stop"] == ["END"] and call.body["max_tokens"] == 256 and call.body["tool_choice"] == "auto"
    )


def test_serial_tool_use_and_user_id_survive_the_round_trip() -> None:
    request = {
        **load("anthropic/chat_request.json"),
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "user-42"},
    }
    call = INGRESS.parse_chat(orjson.dumps(request))
    assert call.body["parallel_tool_calls"] is False and call.body["user"] == "user-42"
    upstream = AnthropicAdapter().chat_request(
        call.body, target(ProviderType.ANTHROPIC, "claude-sonnet-4-5"), stream=False
    )
    assert orjson.loads(upstream.body) == request


def test_system_as_blocks_and_streaming_flag() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "stream": True,
        "system": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        "messages": [{"role": "user", "content": "hi"}],
        "tool_choice": {"type": "tool", "name": "f"},
    }
    call = INGRESS.parse_chat(orjson.dumps(body))
    assert call.stream and call.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert call.body["tool_choice"] == {"type": "function", "function": {"name": "f"}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages.0.role",
        ),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
    ],
)
def test_invalid_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.BadRequestError) as caught:
        INGRESS.parse_chat(orjson.dumps(body))
    assert caught.value.param == param


def completion(**message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "tool_calls"}],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 8,
            "total_tokens": 38,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    }


def test_render_response_is_a_valid_anthropic_message() -> None:
    body = INGRESS.render_response(
        completion(
            content="Checking.",
            tool_calls=[
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        )
    )
    message = Message.model_validate_json(body)
    assert message.id == "msg_abc123" and message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    tool_use = message.content[1]
    assert tool_use.type == "tool_use"
    assert (tool_use.id, tool_use.name, tool_use.input) == ("call_1", "get_weather", {"city": "Paris"})
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (20, 10)
    assert message.usage.output_tokens == 8


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-xyz",
        "object": "chat.completion.chunk",
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_stream_encoder_emits_the_exact_event_sequence() -> None:
    encoder = INGRESS.stream_encoder(model="client-model", include_usage=True)
    out = encoder.chunk(chunk({"role": "assistant", "content": ""}))
    out += encoder.chunk(orjson.dumps(chunk({"content": "Hel"})))  # raw bytes pass-through chunks too
    out += encoder.chunk(chunk({"content": "lo"}))
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    out += encoder.chunk(chunk({"tool_calls": [call]}))
    out += encoder.chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}))
    out += encoder.chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}))
    out += encoder.chunk(chunk({}, "tool_calls"))
    out += encoder.chunk({**chunk({}), "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 8}})
    out += encoder.finish(Usage(input_tokens=30, output_tokens=8, cached_input_tokens=10))
    sequence = events(out)
    assert [(name, p.get("index")) for name, p in sequence] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert sequence[0][1]["message"]["id"] == "msg_xyz" and sequence[0][1]["message"]["model"] == "gpt-4o"
    assert sequence[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {},
    }
    partial = "".join(p["delta"].get("partial_json", "") for _, p in sequence[6:8])
    assert orjson.loads(partial) == {"city": "Paris"}
    assert sequence[9][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert sequence[9][1]["usage"] == {"input_tokens": 20, "output_tokens": 8, "cache_read_input_tokens": 10}


def test_empty_stream_still_opens_and_closes_the_message() -> None:
    encoder = INGRESS.stream_encoder(model="client-model", include_usage=True)
    sequence = events(encoder.finish(None))
    assert [name for name, _ in sequence] == ["message_start", "message_delta", "message_stop"]
    assert sequence[0][1]["message"]["model"] == "client-model"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (errors.BadRequestError("bad", param="x"), "invalid_request_error"),
        (errors.AuthenticationError("who"), "authentication_error"),
        (errors.PermissionDeniedError("no"), "permission_error"),
        (errors.NotFoundError("none"), "not_found_error"),
        (errors.RateLimitError("slow down"), "rate_limit_error"),
        (errors.ServiceUnavailableError("busy"), "overloaded_error"),
        (errors.UpstreamError("boom", reason=FallbackReason.SERVER_ERROR), "api_error"),
        (errors.UpstreamTimeoutError("late"), "api_error"),
    ],
)
def test_errors_use_anthropic_types(error: errors.GatewayError, kind: str) -> None:
    assert orjson.loads(INGRESS.render_error(error)) == {
        "type": "error",
        "error": {"type": kind, "message": error.message},
    }


def test_mid_stream_error_is_an_error_event() -> None:
    encoder = INGRESS.stream_encoder(model="m", include_usage=True)
    encoder.chunk(chunk({"content": "partial"}))
    sequence = events(encoder.error(errors.UpstreamError("provider 'x' went away", reason=None)))
    assert sequence == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "provider 'x' went away"}})
    ]
