"""Anthropic upstream failures and fallbacks, and Anthropic-SDK clients served by Gemini and Ollama."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import TENANT_KEY, key_hash
from tests.proxy_process import ProxyProcess
from tests.upstreams.anthropic import AnthropicReply, FakeAnthropic
from tests.upstreams.gemini import FakeGemini, GeminiReply
from tests.upstreams.ollama import FakeOllama
from tests.upstreams.server import ThreadedServer, serve

WEATHER: Any = [
    {"name": "get_weather", "description": "Weather for a city", "input_schema": {"type": "object"}}
]


@pytest.fixture
def claude() -> Iterator[tuple[FakeAnthropic, ThreadedServer]]:
    fake = FakeAnthropic()
    with serve(fake.app) as server:
        yield fake, server


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
    claude: tuple[FakeAnthropic, ThreadedServer],
    gemini: tuple[FakeGemini, ThreadedServer],
    ollama: tuple[FakeOllama, ThreadedServer],
    start_proxy: Callable[..., ProxyProcess],
) -> ProxyProcess:
    config: dict[str, Any] = {
        "providers": [
            {
                "name": "claude",
                "type": "anthropic",
                "baseURL": claude[1].url,
                "apiKey": {"value": "sk-ant-x"},
            },
            {"name": "google", "type": "gemini", "baseURL": gemini[1].url, "apiKey": {"value": "AIza-x"}},
            {"name": "local", "type": "ollama", "baseURL": ollama[1].url},
        ],
        "routes": [
            {
                "model": "claude-only",
                "retry": {"attempts": 0},
                "backends": [{"provider": "claude", "model": "claude-sonnet-4-5"}],
            },
            {
                "model": "claude-then-gemini",
                "timeout": "1s",
                "retry": {"attempts": 0},
                "backends": [
                    {"provider": "claude", "model": "claude-sonnet-4-5", "priority": 0},
                    {"provider": "google", "model": "gemini-2.0-flash", "priority": 1},
                ],
            },
            {"model": "flash", "backends": [{"provider": "google", "model": "gemini-2.0-flash"}]},
            {"model": "llama", "backends": [{"provider": "local", "model": "llama3.2"}]},
        ],
        "tenants": [{"name": "team-a", "keys": [{"sha256": key_hash(TENANT_KEY)}]}],
    }
    return start_proxy(config)


def claude_client(proxy: ProxyProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=TENANT_KEY, max_retries=0)


def openai_client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)


HI: Any = [{"role": "user", "content": "Hi"}]


def test_anthropic_sdk_served_by_gemini_with_streamed_tool_use(
    proxy: ProxyProcess, gemini: tuple[FakeGemini, ThreadedServer]
) -> None:
    message = claude_client(proxy).messages.create(
        model="flash", max_tokens=20, system="Be brief.", messages=HI
    )
    assert message.content[0].type == "text" and message.content[0].text == "Hello from Gemini"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 5
    assert gemini[0].requests[-1].body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert gemini[0].requests[-1].body["generationConfig"] == {"maxOutputTokens": 20}

    gemini[0].respond(
        GeminiReply(text="Checking", function_call={"name": "get_weather", "args": {"city": "Paris"}})
    )
    with claude_client(proxy).messages.stream(
        model="flash", max_tokens=20, tools=WEATHER, messages=HI
    ) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["text", "tool_use"]
    tool_use = final.content[1]
    assert (
        tool_use.type == "tool_use" and tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
    )
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 5


def test_anthropic_sdk_streams_from_ollama(proxy: ProxyProcess) -> None:
    with claude_client(proxy).messages.stream(model="llama", max_tokens=20, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from Ollama "
    assert (final.usage.input_tokens, final.usage.output_tokens) == (26, 4)


def test_overloaded_anthropic_falls_back_to_gemini(
    proxy: ProxyProcess, claude: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    claude[0].reply = AnthropicReply(status=529, error_type="overloaded_error")
    raw = claude_client(proxy).messages.with_raw_response.create(
        model="claude-then-gemini", max_tokens=20, messages=HI
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "Hello from Gemini"
    assert raw.headers["x-sluice-provider"] == "google"
    assert len(claude[0].requests) == 1


def test_slow_anthropic_stream_falls_back_before_the_first_byte(
    proxy: ProxyProcess, claude: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    claude[0].reply = AnthropicReply(first_byte_delay=3)
    stream = openai_client(proxy).chat.completions.create(
        model="claude-then-gemini", messages=HI, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from Gemini "


def test_rate_limit_reaches_both_sdks_with_retry_after(
    proxy: ProxyProcess, claude: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    claude[0].reply = AnthropicReply(status=429, error_type="rate_limit_error", headers={"retry-after": "7"})
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude_client(proxy).messages.create(model="claude-only", max_tokens=5, messages=HI)
    assert caught.value.response.headers["retry-after"] == "7"
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "fake failure" in body["error"]["message"]
    with pytest.raises(openai.RateLimitError, match="fake failure"):
        openai_client(proxy).chat.completions.create(model="claude-only", messages=HI)


def test_rejected_upstream_key_is_a_gateway_error_that_names_the_fix(
    proxy: ProxyProcess, claude: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    claude[0].reply = AnthropicReply(status=401, error_type="authentication_error")
    with pytest.raises(anthropic.APIStatusError, match="apiKey") as caught:
        claude_client(proxy).messages.create(model="claude-only", max_tokens=5, messages=HI)
    assert caught.value.status_code == 502


def test_cut_anthropic_stream_ends_with_an_error_event(
    proxy: ProxyProcess, claude: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    claude[0].reply = AnthropicReply(text="one two three four", cut_after=4)
    texts: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError, match="provider 'claude'"),
        claude_client(proxy).messages.stream(model="claude-only", max_tokens=5, messages=HI) as stream,
    ):
        texts.extend(stream.text_stream)
    assert "".join(texts).startswith("one ") and "four" not in "".join(texts)
