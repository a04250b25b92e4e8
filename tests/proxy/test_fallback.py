"""Retries, fallback across priorities, circuit breaking, broken streams and disconnects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import TENANT_KEY, key_hash
from tests.proxy_process import ProxyProcess, wait_until
from tests.upstreams.openai import FakeOpenAI, Reply
from tests.upstreams.server import ThreadedServer

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def secondary() -> Iterator[tuple[FakeOpenAI, ThreadedServer]]:
    fake = FakeOpenAI()
    server = ThreadedServer(fake.app).start()
    yield fake, server
    server.stop()


def two_backend_config(primary_url: str, secondary_url: str, **route: Any) -> dict[str, Any]:
    return {
        "providers": [
            {"name": "primary", "type": "openai", "baseURL": f"{primary_url}/v1", "apiKey": {"value": "k1"}},
            {
                "name": "secondary",
                "type": "openai",
                "baseURL": f"{secondary_url}/v1",
                "apiKey": {"value": "k2"},
            },
        ],
        "routes": [
            {
                "model": "gpt-4o",
                "backends": [
                    {"provider": "primary", "model": "p-model", "priority": 0},
                    {"provider": "secondary", "model": "s-model", "priority": 1},
                ],
                "retry": {"attempts": 1, "backoff": "10ms"},
                **route,
            }
        ],
        "tenants": [{"name": "team-a", "keys": [{"sha256": key_hash(TENANT_KEY)}]}],
    }


@pytest.fixture
def pair(
    fake_openai: tuple[FakeOpenAI, ThreadedServer],
    secondary: tuple[FakeOpenAI, ThreadedServer],
    start_proxy: Callable[..., ProxyProcess],
) -> tuple[FakeOpenAI, FakeOpenAI, ProxyProcess]:
    proxy = start_proxy(two_backend_config(fake_openai[1].url, secondary[1].url, timeout="1s"))
    return fake_openai[0], secondary[0], proxy


def chat(proxy: ProxyProcess, **extra: Any) -> httpx.Response:
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={**BODY, **extra},
        headers={"Authorization": f"Bearer {TENANT_KEY}"},
        timeout=20,
    )


def test_retry_then_success_on_the_same_backend(pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess]) -> None:
    primary, secondary, proxy = pair
    primary.respond(Reply(status=503), Reply())
    response = chat(proxy)
    assert response.status_code == 200
    assert response.headers["x-sluice-provider"] == "primary"
    assert len(primary.requests) == 2 and not secondary.requests
    assert proxy.metric("sluice_retries_total", provider="primary") == 1


def test_falls_back_to_the_next_priority_after_retries(
    pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess],
) -> None:
    primary, secondary, proxy = pair
    primary.respond(Reply(status=500))
    response = chat(proxy)
    assert response.status_code == 200
    assert response.headers["x-sluice-provider"] == "secondary"
    assert secondary.requests[-1].body["model"] == "s-model"
    assert len(primary.requests) == 2
    assert (
        proxy.metric("sluice_fallbacks_total", model="gpt-4o", provider="secondary", reason="serverError")
        == 1
    )


def test_429_retry_after_is_honoured(pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess]) -> None:
    primary, _, proxy = pair
    primary.respond(Reply(status=429, headers={"retry-after-ms": "300"}), Reply())
    response = chat(proxy)
    assert response.status_code == 200 and response.headers["x-sluice-provider"] == "primary"
    first, second = primary.requests
    assert second.at - first.at >= 0.3, "the retry must wait for the upstream's Retry-After"


def test_long_retry_after_moves_on_instead_of_waiting(
    pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess],
) -> None:
    primary, _, proxy = pair
    primary.respond(Reply(status=429, headers={"retry-after": "3600"}))
    response = chat(proxy)
    assert response.status_code == 200 and response.headers["x-sluice-provider"] == "secondary"
    assert len(primary.requests) == 1


def test_all_backends_failing_returns_the_last_error(
    pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess],
) -> None:
    primary, secondary, proxy = pair
    primary.respond(Reply(status=500))
    secondary.respond(Reply(status=429, error_message="slow down", headers={"retry-after": "30"}))
    response = chat(proxy)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    assert "slow down" in response.json()["error"]["message"]


def test_slow_first_byte_times_out_and_falls_back(pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess]) -> None:
    primary, secondary, proxy = pair
    primary.respond(Reply(first_byte_delay=3))
    sdk = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)
    stream = sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "w0 w1 w2 "
    assert secondary.requests and secondary.requests[-1].body["stream"] is True


def test_fallback_not_on_a_failure_class_the_route_excludes(
    fake_openai: tuple[FakeOpenAI, ThreadedServer],
    secondary: tuple[FakeOpenAI, ThreadedServer],
    start_proxy: Callable[..., ProxyProcess],
) -> None:
    proxy = start_proxy(two_backend_config(fake_openai[1].url, secondary[1].url, fallbackOn=["timeout"]))
    fake_openai[0].respond(Reply(status=500))
    assert chat(proxy).status_code == 502
    assert not secondary[0].requests


def test_circuit_opens_after_repeated_failures(pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess]) -> None:
    primary, _, proxy = pair
    primary.respond(Reply(status=500))
    for _ in range(3):  # 2 attempts each: the breaker (threshold 5) opens during the third request
        assert chat(proxy).headers["x-sluice-provider"] == "secondary"
    sent = len(primary.requests)
    assert chat(proxy).headers["x-sluice-provider"] == "secondary"
    assert len(primary.requests) == sent, "an open circuit must skip the backend"
    assert proxy.metric("sluice_circuit_breaker_state", provider="primary", model="p-model") == 2


def test_broken_stream_ends_with_an_error_event(pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess]) -> None:
    primary, secondary, proxy = pair
    primary.respond(Reply(cut_after=2, stream_words=5))
    sdk = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)
    stream = sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received, "chunks before the break reach the client"
    assert not secondary.requests, "no fallback after the first byte"


def test_client_disconnect_cancels_the_upstream(pair: tuple[FakeOpenAI, FakeOpenAI, ProxyProcess]) -> None:
    primary, _, proxy = pair
    primary.respond(Reply(stream_words=200, chunk_delay=0.05))
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        json={**BODY, "stream": True},
        headers={"Authorization": f"Bearer {TENANT_KEY}"},
        timeout=10,
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    wait_until(lambda: primary.disconnects == 1, timeout=10, message="upstream to see the disconnect")
    assert primary.finished_streams == 0
    # The abandoned stream is still charged: an estimate, since the provider never reported usage.
    wait_until(
        lambda: proxy.metric("sluice_tokens_total", tenant="team-a", type="output") >= 1, message="usage"
    )
    wait_until(lambda: '"usage_estimated":true' in proxy.logs(), message="the estimate flagged in the log")
