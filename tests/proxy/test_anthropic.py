"""Both directions of translation: OpenAI clients → Anthropic upstreams, Anthropic clients → any upstream."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import TENANT_KEY, key_hash
from tests.proxy_process import ProxyProcess
from tests.upstreams.anthropic import AnthropicReply, FakeAnthropic
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.server import ThreadedServer

WEATHER_TOOL = {"id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}}


@pytest.fixture
def fake_anthropic() -> Iterator[tuple[FakeAnthropic, ThreadedServer]]:
    fake = FakeAnthropic()
    server = ThreadedServer(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def proxy(
    fake_anthropic: tuple[FakeAnthropic, ThreadedServer],
    fake_openai: tuple[FakeOpenAI, ThreadedServer],
    start_proxy: Callable[..., ProxyProcess],
) -> ProxyProcess:
    config: dict[str, Any] = {
        "providers": [
            {
                "name": "claude",
                "type": "anthropic",
                "baseURL": fake_anthropic[1].url,
                "apiKey": {"value": "sk-ant-secret"},
            },
            {
                "name": "openai",
                "type": "openai",
                "baseURL": f"{fake_openai[1].url}/v1",
                "apiKey": {"value": "sk-oa"},
            },
        ],
        "routes": [
            {"model": "claude-sonnet", "backends": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
            {"model": "gpt-4o", "backends": [{"provider": "openai", "model": "gpt-4o"}]},
        ],
        "tenants": [{"name": "team-a", "keys": [{"sha256": key_hash(TENANT_KEY)}]}],
    }
    return start_proxy(config)


def openai_client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)


def anthropic_client(proxy: ProxyProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=TENANT_KEY, max_retries=0)


def test_openai_client_to_anthropic_upstream(
    proxy: ProxyProcess, fake_anthropic: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    fake, _ = fake_anthropic
    completion = openai_client(proxy).chat.completions.create(
        model="claude-sonnet",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Weather?"},
        ],
        max_tokens=100,
        stop=["END"],
    )
    assert completion.choices[0].message.content == "Hello from Claude"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 25  # 21 + 4 cache reads
    headers, body = fake.requests[-1]
    assert headers["x-api-key"] == "sk-ant-secret" and headers["anthropic-version"] == "2023-06-01"
    assert body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert (
        body["max_tokens"] == 100
        and body["stop_sequences"] == ["END"]
        and body["model"] == "claude-sonnet-4-5"
    )


def test_openai_client_tool_calls_round_trip(
    proxy: ProxyProcess, fake_anthropic: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    fake, _ = fake_anthropic
    fake.reply = AnthropicReply(tool=WEATHER_TOOL)
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    completion = openai_client(proxy).chat.completions.create(
        model="claude-sonnet",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice="required",
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert (
        call.function.name == "get_weather" and json.loads(call.function.arguments) == WEATHER_TOOL["input"]
    )  # type: ignore[union-attr]
    _, body = fake.requests[-1]
    assert body["tools"][0]["input_schema"] == {"type": "object"} and body["tool_choice"] == {"type": "any"}
    # The tool result goes back as a tool_result block.
    openai_client(proxy).chat.completions.create(
        model="claude-sonnet",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_01",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
        ],
        tools=tools,
    )
    _, body = fake.requests[-1]
    assert body["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert body["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_01",
        "content": "18C",
    }


def test_openai_client_streams_from_anthropic(
    proxy: ProxyProcess, fake_anthropic: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    fake, _ = fake_anthropic
    fake.reply = AnthropicReply(tool=WEATHER_TOOL)
    chunks = list(
        openai_client(proxy).chat.completions.create(
            model="claude-sonnet",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from Claude "
    arguments = "".join(
        tc.function.arguments or ""
        for c in chunks
        if c.choices
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function
    )
    assert json.loads(arguments) == WEATHER_TOOL["input"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9


def test_anthropic_stream_error_event_reaches_the_openai_client(
    proxy: ProxyProcess, fake_anthropic: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    fake_anthropic[0].reply = AnthropicReply(error_midway=True)
    stream = openai_client(proxy).chat.completions.create(
        model="claude-sonnet", messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(stream)


def test_anthropic_sdk_against_openai_upstream(
    proxy: ProxyProcess, fake_openai: tuple[FakeOpenAI, ThreadedServer]
) -> None:
    message = anthropic_client(proxy).messages.create(
        model="gpt-4o", max_tokens=50, system="Be brief.", messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "hello from upstream"
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 7
    body = fake_openai[0].requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."} and body["max_tokens"] == 50


def test_anthropic_sdk_streams_from_openai_upstream(proxy: ProxyProcess) -> None:
    with anthropic_client(proxy).messages.stream(
        model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "w0 w1 w2 "
    assert final.usage.output_tokens == 7 and final.stop_reason == "end_turn"


def test_anthropic_sdk_to_anthropic_upstream_with_tools(
    proxy: ProxyProcess, fake_anthropic: tuple[FakeAnthropic, ThreadedServer]
) -> None:
    fake_anthropic[0].reply = AnthropicReply(tool=WEATHER_TOOL)
    client = anthropic_client(proxy)
    tools: Any = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
    message = client.messages.create(
        model="claude-sonnet", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "Weather?"}]
    )
    tool_use = next(b for b in message.content if b.type == "tool_use")
    assert tool_use.name == "get_weather" and tool_use.input == WEATHER_TOOL["input"]
    assert message.stop_reason == "tool_use"
    with client.messages.stream(
        model="claude-sonnet", max_tokens=50, tools=tools, messages=[{"role": "user", "content": "Weather?"}]
    ) as stream:
        final = stream.get_final_message()
    streamed_tool = next(b for b in final.content if b.type == "tool_use")
    assert streamed_tool.input == WEATHER_TOOL["input"] and final.stop_reason == "tool_use"


def test_errors_on_messages_use_anthropic_shape(proxy: ProxyProcess) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=proxy.url, api_key="sk-wrong", max_retries=0).messages.create(
            model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    response = httpx.post(
        f"{proxy.url}/v1/messages",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": TENANT_KEY},
    )
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client(proxy).messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
