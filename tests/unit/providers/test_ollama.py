"""The Ollama native adapter: /api/chat encoding, answers, NDJSON streams, /api/embed, errors."""

from __future__ import annotations

import orjson
import pytest

from sluice_proxy.config.schema import ProviderType
from sluice_proxy.errors import BadRequestError, UpstreamError
from sluice_proxy.providers.ollama import OllamaAdapter
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

ADAPTER = OllamaAdapter()
TARGET = target(ProviderType.OLLAMA, "llama3.2")


def test_request_matches_the_golden_chat_body() -> None:
    request = ADAPTER.chat_request(load("openai/chat_request.json"), TARGET, stream=False)
    assert request.url == "http://upstream.test/api/chat"
    assert request.headers == {"content-type": "application/json"}
    assert orjson.loads(request.body) == load("ollama/chat_request.json")


def test_stream_flag_json_format_and_key_as_bearer() -> None:
    keyed = target(ProviderType.OLLAMA, "llama3.2", api_key="tok")
    chat = {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}
    request = ADAPTER.chat_request(chat, keyed, stream=True)
    assert request.headers["authorization"] == "Bearer tok"
    body = orjson.loads(request.body)
    assert body["stream"] is True and body["format"] == "json"


def test_image_urls_are_refused_with_the_fix() -> None:
    chat = {
        "messages": [
            {"role": "user", "content": "look"},
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://img.test/a.png"}}],
            },
        ]
    }
    with pytest.raises(BadRequestError, match="data URL") as caught:
        ADAPTER.chat_request(chat, TARGET, stream=False)
    assert caught.value.param == "messages[1].content"


def test_response() -> None:
    completion, usage = ADAPTER.chat_response(raw("ollama/response.json"), TARGET)
    assert completion["object"] == "chat.completion" and completion["model"] == "llama3.2"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
            "finish_reason": "stop",
        }
    ]
    assert (usage.input_tokens, usage.output_tokens) == (11, 18)
    assert completion["usage"] == {"prompt_tokens": 11, "completion_tokens": 18, "total_tokens": 29}


def test_response_with_tool_calls() -> None:
    body = {
        "model": "qwen3",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        "done": True,
        "done_reason": "stop",
    }
    completion, _ = ADAPTER.chat_response(orjson.dumps(body), TARGET)
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }


@pytest.mark.parametrize("size", SLICE_SIZES)
def test_ndjson_stream_in_any_slices(size: int | None) -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=True)
    chunks = decode(decoder, raw("ollama/stream_text.ndjson"), size)
    assert decoder.done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == "The sky is blue — très bleu."
    assert finish_reasons(chunks) == ["length"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 26, "completion_tokens": 3, "total_tokens": 29}


def test_stream_tool_calls_without_usage_chunk() -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    chunks = decode(decoder, raw("ollama/stream_tool_call.ndjson"), 13)
    assert tool_calls_of(chunks) == {
        0: {"id": "call_0", "name": "get_weather", "arguments": '{"city":"Paris"}'}
    }
    assert finish_reasons(chunks) == ["tool_calls"]
    assert all(c["choices"] for c in chunks)
    assert decoder.usage is not None and decoder.usage.total_tokens == 101


def test_stream_without_done_line_is_not_done() -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    decode(decoder, raw("ollama/stream_text.ndjson").rsplit(b"\n", 2)[0], 4)
    assert not decoder.done and decoder.usage is None


def test_error_line_mid_stream_raises() -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    stream = (
        raw("ollama/stream_text.ndjson").split(b"\n")[0]
        + b'\n{"error":"an error was encountered while running the model"}\n'
    )
    with pytest.raises(UpstreamError, match="while running the model"):
        decode(decoder, stream, 9)


def test_garbage_line_raises_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="not JSON"):
        decode(ADAPTER.stream_decoder(TARGET, include_usage=False), b"<html>\n", None)


def test_embeddings() -> None:
    request = ADAPTER.embeddings_request({"model": "embed", "input": ["a", "b"]}, TARGET)
    assert request.url == "http://upstream.test/api/embed"
    assert orjson.loads(request.body) == {"model": "llama3.2", "input": ["a", "b"]}
    data, usage = ADAPTER.embeddings_response(
        b'{"model":"all-minilm","embeddings":[[0.1,0.2],[0.3,0.4]],"prompt_eval_count":8}', TARGET
    )
    assert data == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
            {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
        ],
        "model": "all-minilm",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    assert usage.input_tokens == 8


def test_error_message() -> None:
    assert ADAPTER.error_message(404, b'{"error":"model \\"nope\\" not found, try pulling it first"}') == (
        'model "nope" not found, try pulling it first'
    )
    assert ADAPTER.error_message(500, b"") == "upstream answered HTTP 500"


def test_error_after_text_in_one_read_keeps_the_text_and_raises_next() -> None:
    decoder = ADAPTER.stream_decoder(TARGET, include_usage=False)
    stream = raw("ollama/stream_text.ndjson").split(b"\n")[0] + b'\n{"error":"model crashed"}\n'
    assert text_of([c for c in decoder.feed(stream) if isinstance(c, dict)]) == "The"
    with pytest.raises(UpstreamError, match="model crashed"):
        decoder.feed(b"")
