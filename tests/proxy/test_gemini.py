"""The OpenAI SDK against a real proxy in front of a fake Gemini API (and Ollama as a fallback)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.conftest import TENANT_KEY, key_hash
from tests.proxy_process import ProxyProcess
from tests.upstreams.gemini import FakeGemini, GeminiReply
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.server import ThreadedServer, serve

WEATHER: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def gemini() -> Iterator[tuple[FakeGemini, ThreadedServer]]:
    fake = FakeGemini()
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture
def ollama() -> Iterator[tuple[FakeOllama, ThreadedServer]]:
    fake = FakeOllama()
    with serve(fake.app) as server:
        yield fake, server


@pytest.fixture
def proxy(
    gemini: tuple[FakeGemini, ThreadedServer],
    ollama: tuple[FakeOllama, ThreadedServer],
    start_proxy: Callable[..., ProxyProcess],
) -> ProxyProcess:
    config: dict[str, Any] = {
        "providers": [
            {
                "name": "google",
                "type": "gemini",
                "baseURL": gemini[1].url,
                "apiKey": {"value": "AIza-upstream"},
            },
            {"name": "local", "type": "ollama", "baseURL": ollama[1].url},
        ],
        "routes": [
            {"model": "flash", "backends": [{"provider": "google", "model": "gemini-2.0-flash"}]},
            {"model": "embed", "backends": [{"provider": "google", "model": "text-embedding-004"}]},
            {
                "model": "resilient",
                "timeout": "1s",
                "retry": {"attempts": 0},
                "backends": [
                    {"provider": "google", "model": "gemini-2.0-flash", "priority": 0},
                    {"provider": "local", "model": "llama3.2", "priority": 1},
                ],
            },
        ],
        "tenants": [{"name": "team-a", "keys": [{"sha256": key_hash(TENANT_KEY)}]}],
    }
    return start_proxy(config)


def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)


def test_chat_is_translated_to_generate_content(
    proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer]
) -> None:
    fake, _ = gemini
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="flash",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=64,
        temperature=0.5,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello from Gemini"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and (
        completion.usage.prompt_tokens,
        completion.usage.completion_tokens,
    ) == (12, 5)
    assert raw.headers["x-sluice-provider"] == "google"
    sent = fake.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "AIza-upstream" and "key=" not in sent.path
    assert TENANT_KEY not in str(sent.headers)
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64},
    }


def test_streaming_with_usage(proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer]) -> None:
    fake, _ = gemini
    chunks = list(
        client(proxy).chat.completions.create(
            model="flash",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from Gemini "
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert fake.requests[-1].path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert proxy.metric("sluice_tokens_total", tenant="team-a", type="output") == 5


def test_function_calls_both_ways(proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer]) -> None:
    fake, _ = gemini
    fake.respond(GeminiReply(text="", function_call={"name": "get_weather", "args": {"city": "Paris"}}))
    completion = client(proxy).chat.completions.create(
        model="flash",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=WEATHER,
        tool_choice="required",
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    call = (completion.choices[0].message.tool_calls or [])[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert fake.requests[-1].body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert fake.requests[-1].body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"

    streamed = list(
        client(proxy).chat.completions.create(
            model="flash", messages=[{"role": "user", "content": "Weather?"}], tools=WEATHER, stream=True
        )
    )
    deltas = [tc for c in streamed if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(d.index, d.function.name if d.function else None) for d in deltas] == [(0, "get_weather")]

    fake.respond(GeminiReply(text="18C in Paris"))
    client(proxy).chat.completions.create(
        model="flash",
        messages=[
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 18}'},
        ],
        tools=WEATHER,
    )
    assert fake.requests[-1].body["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"celsius": 18}}}],
        },
    ]


def test_provider_error_message_reaches_the_client(
    proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer]
) -> None:
    gemini[0].respond(GeminiReply(status=400, error_message="Invalid JSON payload received."))
    with pytest.raises(openai.BadRequestError, match="Invalid JSON payload received"):
        client(proxy).chat.completions.create(model="flash", messages=[{"role": "user", "content": "Hi"}])


def test_rate_limited_gemini_falls_back_to_ollama(
    proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer], ollama: tuple[FakeOllama, ThreadedServer]
) -> None:
    gemini[0].respond(
        GeminiReply(status=429, headers={"Retry-After": "1"}, error_message="Resource exhausted")
    )
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="resilient", messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.parse().choices[0].message.content == "Hello from Ollama"
    assert raw.headers["x-sluice-provider"] == "local"
    assert len(gemini[0].requests) == 1 and ollama[0].requests[-1].body["model"] == "llama3.2"


def test_slow_first_byte_falls_back(
    proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer], ollama: tuple[FakeOllama, ThreadedServer]
) -> None:
    gemini[0].respond(GeminiReply(first_byte_delay=3))
    stream = client(proxy).chat.completions.create(
        model="resilient", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from Ollama "
    assert ollama[0].requests[-1].body["stream"] is True


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (GeminiReply(text="one two three", cut_after=2), "provider 'google'"),
        (GeminiReply(text="one two three", error_midway=True), "overloaded"),
    ],
)
def test_broken_streams_end_with_an_error(
    proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer], reply: GeminiReply, message: str
) -> None:
    gemini[0].respond(reply)
    stream = client(proxy).chat.completions.create(
        model="flash", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError, match=message):
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received).startswith("one ")


def test_embeddings(proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer]) -> None:
    result = client(proxy).embeddings.create(model="embed", input=["a", "b"], encoding_format="float")
    assert [d.embedding for d in result.data] == [[0.5, 0.0], [0.5, 1.0]]
    sent = gemini[0].requests[-1]
    assert sent.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert [r["content"] for r in sent.body["requests"]] == [
        {"parts": [{"text": "a"}]},
        {"parts": [{"text": "b"}]},
    ]


def test_ollama_is_not_asked_when_gemini_answers(
    proxy: ProxyProcess, ollama: tuple[FakeOllama, ThreadedServer]
) -> None:
    client(proxy).chat.completions.create(model="resilient", messages=[{"role": "user", "content": "Hi"}])
    assert ollama[0].requests == []
