"""The OpenAI SDK against a real proxy in front of a fake Ollama server speaking /api/chat."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.conftest import TENANT_KEY, key_hash
from tests.proxy_process import ProxyProcess
from tests.upstreams.ollama import FakeOllama, OllamaReply
from tests.upstreams.server import ThreadedServer, serve

Upstream = tuple[FakeOllama, ThreadedServer]


@pytest.fixture
def ollama() -> Iterator[Upstream]:
    fake = FakeOllama()
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture
def proxy(ollama: Upstream, start_proxy: Callable[..., ProxyProcess]) -> ProxyProcess:
    config: dict[str, Any] = {
        "providers": [{"name": "local", "type": "ollama", "baseURL": ollama[1].url}],
        "routes": [
            {"model": "llama", "backends": [{"provider": "local", "model": "llama3.2"}]},
            {"model": "minilm", "backends": [{"provider": "local", "model": "all-minilm"}]},
        ],
        "tenants": [{"name": "team-a", "keys": [{"sha256": key_hash(TENANT_KEY)}]}],
    }
    return start_proxy(config)


def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)


def test_chat_is_translated_to_api_chat(proxy: ProxyProcess, ollama: Upstream) -> None:
    completion = client(proxy).chat.completions.create(
        model="llama",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=32,
        temperature=0.1,
        stop="END",
        seed=7,
    )
    assert completion.choices[0].message.content == "Hello from Ollama"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    ) == (26, 4)
    sent = ollama[0].requests[-1]
    assert sent.path == "/api/chat" and "authorization" not in {k.lower() for k in sent.headers}
    assert sent.body == {
        "model": "llama3.2",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "stream": False,
        "options": {"temperature": 0.1, "seed": 7, "num_predict": 32, "stop": ["END"]},
    }


def test_ndjson_stream_with_usage(proxy: ProxyProcess, ollama: Upstream) -> None:
    ollama[0].respond(OllamaReply(text="one two three", done_reason="length"))
    chunks = list(
        client(proxy).chat.completions.create(
            model="llama",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three "
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "length"
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 30
    assert ollama[0].requests[-1].body["stream"] is True
    assert proxy.metric("sluice_tokens_total", tenant="team-a", type="input") == 26


def test_tool_calls(proxy: ProxyProcess, ollama: Upstream) -> None:
    ollama[0].respond(OllamaReply(text="", tool_call={"name": "get_weather", "arguments": {"city": "Paris"}}))
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    completion = client(proxy).chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "Weather?"}], tools=tools
    )
    call = (completion.choices[0].message.tool_calls or [])[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.choices[0].finish_reason == "tool_calls"
    assert ollama[0].requests[-1].body["tools"] == tools
    streamed = list(
        client(proxy).chat.completions.create(
            model="llama", messages=[{"role": "user", "content": "Weather?"}], tools=tools, stream=True
        )
    )
    deltas = [tc for c in streamed if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(d.index, d.function.name if d.function else None) for d in deltas] == [(0, "get_weather")]
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


def test_missing_model_is_a_404_with_ollamas_message(proxy: ProxyProcess, ollama: Upstream) -> None:
    ollama[0].respond(
        OllamaReply(status=404, error_message='model "llama3.2" not found, try pulling it first')
    )
    with pytest.raises(openai.NotFoundError, match="try pulling it first"):
        client(proxy).chat.completions.create(model="llama", messages=[{"role": "user", "content": "Hi"}])


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (OllamaReply(text="one two three", cut_after=2), "provider 'local'"),
        (OllamaReply(text="one two three", error_midway=True), "while running the model"),
    ],
)
def test_broken_streams_end_with_an_error(
    proxy: ProxyProcess, ollama: Upstream, reply: OllamaReply, message: str
) -> None:
    ollama[0].respond(reply)
    stream = client(proxy).chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match=message):
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    text = "".join(received)
    assert text.startswith("one ") and "three" not in text


def test_embeddings(proxy: ProxyProcess, ollama: Upstream) -> None:
    result = client(proxy).embeddings.create(model="minilm", input=["a", "b"], encoding_format="float")
    assert [d.embedding for d in result.data] == [[0.25, 0.0], [0.25, 1.0]]
    assert result.usage.prompt_tokens == 6
    sent = ollama[0].requests[-1]
    assert sent.path == "/api/embed" and sent.body == {"model": "all-minilm", "input": ["a", "b"]}
