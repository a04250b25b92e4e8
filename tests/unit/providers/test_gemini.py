"""The Gemini adapter: generateContent encoding, answers, alt=sse streams, embeddings, errors."""

from __future__ import annotations

import orjson
import pytest

from sluice_proxy.config.schema import ProviderType
from sluice_proxy.errors import BadRequestError, UpstreamError
from sluice_proxy.providers.gemini import GeminiAdapter
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

ADAPTER = GeminiAdapter()
TARGET = target(ProviderType.GEMINI, "gemini-2.0-flash", api_key="AIza-secret")


def test_request_matches_the_golden_generate_content_body() -> None:
    request = ADAPTER.chat_request(load("openai/chat_request.json"), TARGET, stream=False)
    assert request.url == "http://upstream.test/v1beta/models/gemini-2.0-flash:generateContent"
    assert request.headers == {"content-type": "application/json", "x-goog-api-key": "AIza-secret"}
    assert "AIza-secret" not in request.url
    assert orjson.loads(request.body) == load("gemini/chat_request.json")


def test_stream_url_asks_for_sse() -> None:
    request = ADAPTER.chat_request({"messages": [{"role": "user", "content": "hi"}]}, TARGET, stream=True)
    assert request.url == "http://upstream.test/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert orjson.loads(request.body) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_forced_function_and_url_images() -> None:
    chat = load("openai/chat_request.json")
    chat["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
    chat["messages"] = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://img.test/cat.png?v=2"}}],
        }
    ]
    body = orjson.loads(ADAPTER.chat_request(chat, TARGET, stream=False).body)
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert body["contents"][0]["parts"] == [
        {"fileData": {"mimeType": "image/png", "fileUri": "https://img.test/cat.png?v=2"}}
    ]


def test_response_with_function_call() -> None:
    completion, usage = ADAPTER.chat_response(raw("gemini/response_function_call.json"), TARGET)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    # promptTokenCount already includes the cached tokens.
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (120, 15, 100)
    assert completion["model"] == "gemini-2.0-flash" and completion["id"] == "resp-gem-3"


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
    ],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"}, "finishReason": reason}]}
    completion, _ = ADAPTER.chat_response(orjson.dumps(body), TARGET)
    assert completion["choices"][0]["finish_reason"] == finish


def test_blocked_prompt_is_a_content_filter_finish() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}
    completion, usage = ADAPTER.chat_response(orjson.dumps(body), TARGET)
    assert completion["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": ""},
        "finish_reason": "content_filter",
    }
    assert usage.input_tokens == 7


@pytest.mark.parametrize("size", SLICE_SIZES)
def test_stream_text_with_crlf_events_in_any_slices(size: int | None) -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=True)
    chunks = decode(decoder, raw("gemini/stream_text.sse"), size)
    assert decoder.done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == "The weather in Paris is mild — 18°C."
    assert finish_reasons(chunks) == ["stop"]
    # Thinking tokens are billed as output; the last event's running totals win.
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 13,
        "total_tokens": 25,
        "prompt_tokens_details": {"cached_tokens": 4},
    }


def test_stream_function_calls_get_indexes_and_ids() -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    chunks = decode(decoder, raw("gemini/stream_function_call.sse"), 3)
    assert tool_calls_of(chunks) == {
        0: {"id": "call_0", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        1: {"id": "call_1", "name": "get_time", "arguments": '{"tz":"Europe/Paris"}'},
    }
    assert finish_reasons(chunks) == ["tool_calls"]
    assert all(c["choices"] for c in chunks)
    assert decoder.usage is not None and decoder.usage.total_tokens == 50


def test_stream_closed_before_a_finish_reason_is_not_done() -> None:
    first_event = raw("gemini/stream_text.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=True)
    chunks = decode(decoder, first_event, None)
    assert not decoder.done and finish_reasons(chunks) == []


def test_stream_error_event_raises() -> None:
    error = b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    with pytest.raises(UpstreamError, match="overloaded"):
        decode(decoder, raw("gemini/stream_text.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n" + error, 11)


def test_tool_results_name_the_function_and_wrap_plain_text() -> None:
    chat = {
        "messages": [
            {"role": "user", "content": "time?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c9", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c9", "content": "noon"},
        ]
    }
    body = orjson.loads(ADAPTER.chat_request(chat, TARGET, stream=False).body)
    assert body["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "now", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "now", "response": {"content": "noon"}}}]},
    ]


def test_embeddings_use_batch_embed_contents() -> None:
    embed_target = target(ProviderType.GEMINI, "text-embedding-004", api_key="AIza-secret")
    request = ADAPTER.embeddings_request({"input": ["a", "b"], "dimensions": 3}, embed_target)
    assert request.url == "http://upstream.test/v1beta/models/text-embedding-004:batchEmbedContents"
    assert request.headers["x-goog-api-key"] == "AIza-secret"
    model = "models/text-embedding-004"
    assert orjson.loads(request.body) == {
        "requests": [
            {"model": model, "outputDimensionality": 3, "content": {"parts": [{"text": "a"}]}},
            {"model": model, "outputDimensionality": 3, "content": {"parts": [{"text": "b"}]}},
        ]
    }
    data, _ = ADAPTER.embeddings_response(
        b'{"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}', embed_target
    )
    assert data["object"] == "list" and data["model"] == "text-embedding-004"
    assert data["data"] == [
        {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
        {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
    ]


def test_embeddings_reject_token_arrays() -> None:
    with pytest.raises(BadRequestError) as caught:
        ADAPTER.embeddings_request({"input": [[1, 2, 3]]}, TARGET)
    assert caught.value.param == "input"


def test_error_message_reads_google_error_bodies() -> None:
    body = b'{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}'
    assert ADAPTER.error_message(429, body) == "Resource has been exhausted (e.g. check quota)."
    assert ADAPTER.error_message(400, b'[{"error": {"code": 400, "message": "bad"}}]') == "bad"
    assert ADAPTER.error_message(500, b"oops") == "upstream answered HTTP 500"
