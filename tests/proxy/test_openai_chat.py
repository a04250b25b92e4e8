"""The OpenAI SDK against a real proxy process in front of a fake OpenAI upstream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.conftest import OTHER_KEY, TENANT_KEY, basic_config
from tests.proxy_process import ProxyProcess, wait_until
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.server import ThreadedServer

Upstream = tuple[FakeOpenAI, ThreadedServer]


@pytest.fixture
def proxy(fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]) -> ProxyProcess:
    return start_proxy(basic_config(fake_openai[1].url))


def client(proxy: ProxyProcess, key: str = TENANT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)


def test_chat_completion_is_routed_and_translated(proxy: ProxyProcess, fake_openai: Upstream) -> None:
    fake, _ = fake_openai
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], temperature=0.2
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello from upstream"
    assert completion.usage is not None and completion.usage.total_tokens == 18
    assert raw.headers["x-sluice-provider"] == "openai-main"
    assert raw.headers["x-sluice-model"] == "gpt-4o-2024-08-06"
    assert raw.headers["x-request-id"]
    sent = fake.requests[-1]
    assert sent.body["model"] == "gpt-4o-2024-08-06"
    assert sent.body["temperature"] == 0.2
    assert sent.headers["Authorization"] == "Bearer sk-upstream-secret"
    assert TENANT_KEY not in str(sent.headers)


def test_an_openai_answer_reaches_an_openai_client_byte_for_byte(proxy: ProxyProcess) -> None:
    """Read for its usage, not re-encoded: the fake upstream's json.dumps spacing survives."""
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert b'"object": "chat.completion", "created": ' in raw.http_response.content
    assert raw.parse().choices[0].message.content == "hello from upstream"


def test_streaming_relays_chunks_and_strips_usage_the_client_did_not_ask_for(
    proxy: ProxyProcess, fake_openai: Upstream
) -> None:
    fake, _ = fake_openai
    stream = client(proxy).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 "
    assert all(c.choices for c in chunks), "the usage-only chunk must not reach a client that did not ask"
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    assert proxy.metric("sluice_tokens_total", tenant="team-a", type="output") == 7


def test_streaming_usage_chunk_is_kept_when_asked(proxy: ProxyProcess) -> None:
    chunks = list(
        client(proxy).chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


async def test_async_client_streams(proxy: ProxyProcess) -> None:
    async_client = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)
    stream = await async_client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "w0 w1 w2 "
    await async_client.close()


def test_mock_provider_echoes_deterministically(proxy: ProxyProcess) -> None:
    completion = client(proxy, OTHER_KEY).chat.completions.create(
        model="mock-echo", messages=[{"role": "user", "content": "ping pong"}]
    )
    assert completion.choices[0].message.content == "echo: ping pong"
    streamed = client(proxy, OTHER_KEY).chat.completions.create(
        model="mock-echo", messages=[{"role": "user", "content": "ping pong"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "echo: ping pong"


def test_models_lists_only_what_the_tenant_may_use(proxy: ProxyProcess) -> None:
    assert sorted(m.id for m in client(proxy).models.list()) == ["gpt-4o", "mock-echo"]
    assert [m.id for m in client(proxy, OTHER_KEY).models.list()] == ["mock-echo"]


def test_embeddings(proxy: ProxyProcess, fake_openai: Upstream) -> None:
    fake, _ = fake_openai
    result = client(proxy).embeddings.create(model="gpt-4o", input=["a", "b"])
    assert len(result.data) == 2
    assert fake.requests[-1].path == "/v1/embeddings"
    assert fake.requests[-1].body["model"] == "gpt-4o-2024-08-06"


def test_every_response_names_sluice_as_its_server_and_no_versions(proxy: ProxyProcess) -> None:
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    answered = client(proxy).chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
    with client(proxy).chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=messages, stream=True
    ) as streamed:
        stream_server = streamed.headers["server"]
    with pytest.raises(openai.AuthenticationError) as refused:
        client(proxy, key="sk-not-a-gateway-key").models.list()
    servers = [answered.headers["server"], stream_server, refused.value.response.headers["server"]]
    assert servers == ["sluice", "sluice", "sluice"]


def test_access_log_has_one_json_line_without_secrets(proxy: ProxyProcess) -> None:
    import orjson

    client(proxy).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "top secret prompt"}]
    )

    def access_lines() -> list[dict[str, object]]:
        return [orjson.loads(line) for line in proxy.logs().splitlines() if '"sluice.access"' in line]

    lines = wait_until(access_lines, message="the access line (written in batches)")
    line = lines[-1]
    assert line["tenant"] == "team-a" and line["provider"] == "openai-main" and line["status"] == 200
    assert line["input_tokens"] == 11 and line["output_tokens"] == 7
    logs = proxy.logs()
    for secret in ("top secret prompt", TENANT_KEY, "sk-upstream-secret"):
        assert secret not in logs


def test_tenant_labels_can_be_turned_off(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    config = basic_config(fake_openai[1].url)
    config["metrics"] = {"tenantLabels": False}
    proxy = start_proxy(config)
    client(proxy).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert proxy.metric("sluice_tokens_total", tenant="", type="output") == 7
    tokens = [line for line in proxy.metrics().splitlines() if line.startswith("sluice_tokens_total{")]
    assert tokens and not any('tenant="team-a"' in line for line in tokens)


def test_azure_openai_deployment_url_and_key_header(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    fake, server = fake_openai
    config = basic_config(server.url)
    config["providers"].append(
        {
            "name": "azure",
            "type": "azure-openai",
            "baseURL": server.url,
            "apiVersion": "2024-10-21",
            "apiKey": {"value": "azure-secret"},
        }
    )
    config["routes"].append(
        {"model": "azure-gpt", "backends": [{"provider": "azure", "model": "my-deployment"}]}
    )
    proxy = start_proxy(config)
    streamed = client(proxy).chat.completions.create(
        model="azure-gpt", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "w0 w1 w2 "
    sent = fake.requests[-1]
    assert sent.path == "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    assert sent.headers["api-key"] == "azure-secret" and "Authorization" not in sent.headers
