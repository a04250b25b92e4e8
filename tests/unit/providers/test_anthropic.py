"""The Anthropic Messages adapter: request encoding, answers, event streams, errors."""

from __future__ import annotations

import orjson
import pytest

from sluice_proxy.config.schema import ProviderType
from sluice_proxy.errors import BadRequestError, UpstreamError
from sluice_proxy.providers.anthropic import AnthropicAdapter
from tests.unit.providers.wire import (
    SLICE_SIZES,
    decode,
    finish_reasons,
    load,
    raw,
    target,
    text_of,
    tool_calls_of,
)

ADAPTER = AnthropicAdapter()
TARGET = target(ProviderType.ANTHROPIC, "claude-sonnet-4-5", api_key="sk-ant-secret", headers={"x-team": "a"})


def encode(chat: dict[str, object], *, stream: bool = False) -> dict[str, object]:
    body: dict[str, object] = orjson.loads(ADAPTER.chat_request(chat, TARGET, stream=stream).body)
    return body


def test_request_matches_the_golden_messages_body() -> None:
    request = ADAPTER.chat_request(load("openai/chat_request.json"), TARGET, stream=False)
    assert request.url == "http://upstream.test/v1/messages"
    assert request.headers == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": "sk-ant-secret",
        "x-team": "a",
    }
    assert orjson.loads(request.body) == load("anthropic/chat_request.json")


def test_max_tokens_defaults_and_prefers_max_completion_tokens() -> None:
    hello = [{"role": "user", "content": "hi"}]
    assert encode({"messages": hello})["max_tokens"] == 4096
    assert encode({"messages": hello, "max_tokens": 9, "max_completion_tokens": 12})["max_tokens"] == 12


def test_stream_flag_stop_string_and_url_images() -> None:
    body = encode(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://img.test/cat.jpg"}}],
                }
            ],
            "stop": "END",
        },
        stream=True,
    )
    assert body["stream"] is True and body["stop_sequences"] == ["END"]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "image", "source": {"type": "url", "url": "https://img.test/cat.jpg"}}],
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice(choice: object, expected: dict[str, str]) -> None:
    chat = load("openai/chat_request.json")
    chat["tool_choice"] = choice
    assert encode(chat)["tool_choice"] == expected


def test_serial_tool_calls_and_end_user_id() -> None:
    chat = {**load("openai/chat_request.json"), "parallel_tool_calls": False, "user": "user-42"}
    body = encode(chat)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["metadata"] == {"user_id": "user-42"}


def test_consecutive_turns_of_one_role_are_merged() -> None:
    body = encode({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_response_with_tool_use_becomes_a_chat_completion() -> None:
    completion, usage = ADAPTER.chat_response(raw("anthropic/message_tool_use.json"), TARGET)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check the weather in Paris."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_01A09q90qw90lq917835lq9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'},
        }
    ]
    # Input counts cache reads and cache writes too; cached = cache reads only.
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (3105, 503, 1000)
    assert completion["usage"] == {
        "prompt_tokens": 3105,
        "completion_tokens": 503,
        "total_tokens": 3608,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("tool_use", "tool_calls")],
)
def test_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    message = {**load("anthropic/message_tool_use.json"), "stop_reason": stop_reason}
    completion, _ = ADAPTER.chat_response(orjson.dumps(message), TARGET)
    assert completion["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.parametrize("size", SLICE_SIZES)
def test_stream_decodes_text_tool_calls_and_cumulative_usage(size: int | None) -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=True)
    chunks = decode(decoder, raw("anthropic/stream_tool_use.sse"), size)
    assert decoder.done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"
    assert text_of(chunks) == "Okay, let's check the weather — für Paris:"
    assert tool_calls_of(chunks) == {
        0: {
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "arguments": '{"city": "Paris", "unit": "c"}',
        }
    }
    assert finish_reasons(chunks) == ["tool_calls"]
    # message_delta's output_tokens is the running total, not an increment on message_start's 2.
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 572,
        "completion_tokens": 89,
        "total_tokens": 661,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    assert decoder.usage is not None and decoder.usage.output_tokens == 89


def test_stream_usage_chunk_only_when_asked() -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    chunks = decode(decoder, raw("anthropic/stream_tool_use.sse"), None)
    assert all(c["choices"] for c in chunks)
    assert decoder.usage is not None and decoder.usage.input_tokens == 572


def test_error_event_mid_stream_raises_upstream_error() -> None:
    stream = raw("anthropic/stream_tool_use.sse").split(b"event: content_block_stop")[0]
    stream += (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    with pytest.raises(UpstreamError, match="Overloaded"):
        decode(decoder, stream, 5)
    assert not decoder.done


def test_error_message_reads_anthropic_error_bodies() -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}'
    assert ADAPTER.error_message(429, body) == "Number of requests has exceeded your rate limit"
    assert ADAPTER.error_message(502, b"<html>bad gateway</html>") == "upstream answered HTTP 502"


def test_no_embeddings() -> None:
    with pytest.raises(BadRequestError, match="anthropic") as caught:
        ADAPTER.embeddings_request({"model": "claude", "input": "x"}, TARGET)
    assert caught.value.param == "model"


def test_error_after_text_in_one_read_keeps_the_text_and_raises_next() -> None:
    stream = raw("anthropic/stream_tool_use.sse").split(b"event: content_block_stop")[0]
    stream += (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    assert (
        text_of([c for c in decoder.feed(stream) if isinstance(c, dict)])
        == "Okay, let's check the weather — für Paris:"
    )
    with pytest.raises(UpstreamError, match="Overloaded"):
        decoder.finish()
