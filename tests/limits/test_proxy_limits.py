"""Real proxy processes sharing one real Redis, in front of a fake OpenAI upstream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import OTHER_KEY, TENANT_KEY, basic_config
from tests.proxy_process import ProxyProcess, wait_until
from tests.redis_server import RedisServer
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.server import ThreadedServer

Upstream = tuple[FakeOpenAI, ThreadedServer]
# 28 characters: estimated at 28 // 4 + 4 = 11 prompt tokens, what the fake upstream reports.
PROMPT = [{"role": "user", "content": "what is the capital of peru?"}]


def limited_config(
    upstream: str, redis: RedisServer | None, team_a: dict[str, Any], timeout: str = "100ms", **route: Any
) -> dict[str, Any]:
    config = basic_config(upstream, **route)
    config["tenants"][0].update(team_a)
    config["tenants"][1]["routes"] = ["*"]
    if redis is not None:
        config["redis"] = {"url": redis.url, "timeout": timeout}
    return config


async def _burst(
    urls: list[str], count: int, body: dict[str, Any], key: str = TENANT_KEY
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        calls = [
            client.post(
                f"{urls[i % len(urls)]}/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            )
            for i in range(count)
        ]
        return list(await asyncio.gather(*calls))


def _statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for response in responses:
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
    return counts


@pytest.fixture
def three_proxies(
    fake_openai: Upstream, redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess]
) -> Callable[[dict[str, Any]], list[ProxyProcess]]:
    def start(team_a: dict[str, Any]) -> list[ProxyProcess]:
        # A 300-request burst queues on each event loop for longer than 50ms; a generous
        # timeout keeps every decision on Redis (the outage tests cover the fallback).
        config = limited_config(fake_openai[1].url, redis_server, team_a, timeout="1s")
        return [start_proxy(config) for _ in range(3)]

    return start


async def test_three_proxies_admit_exactly_60_of_300(
    three_proxies: Callable[[dict[str, Any]], list[ProxyProcess]],
) -> None:
    proxies = three_proxies({"limits": {"requestsPerMinute": 60}})
    body = {"model": "gpt-4o", "messages": PROMPT}
    responses = await _burst([p.url for p in proxies], 300, body)
    assert _statuses(responses) == {200: 60, 429: 240}
    ok = next(r for r in responses if r.status_code == 200)
    assert ok.headers["x-ratelimit-limit-requests"] == "60"
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert sum(p.metric("sluice_ratelimit_rejections_total", tenant="team-a") for p in proxies) == 240


async def test_three_proxies_admit_exactly_the_token_limit_of_streams(
    three_proxies: Callable[[dict[str, Any]], list[ProxyProcess]], redis_server: RedisServer
) -> None:
    proxies = three_proxies({"limits": {"tokensPerMinute": 180}})
    body = {"model": "gpt-4o", "messages": PROMPT, "max_tokens": 7, "stream": True}
    responses = await _burst([p.url for p in proxies], 300, body)
    assert _statuses(responses) == {200: 10, 429: 290}  # 10 × (11 + 7) = 180
    streamed = next(r for r in responses if r.status_code == 200)
    assert "data: [DONE]" in streamed.text
    assert streamed.headers["x-ratelimit-limit-tokens"] == "180"

    def charged() -> int:
        with redis_server.client() as client:
            window = client.hgetall("{sluice}:t:team-a:tpm")
        buckets = sum(int(v) for k, v in window.items() if k.isdigit())
        assert buckets == int(window.get(b"sum", 0))  # the running total agrees with its buckets
        return buckets

    wait_until(lambda: charged() == 180, message="every stream's usage charged")


async def test_a_budget_stops_streamed_traffic(
    fake_openai: Upstream, redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess]
) -> None:
    # $1000 per million tokens: each 18-token response costs $0.018; three cross $0.05.
    route = {
        "backends": [
            {"provider": "openai-main", "model": "gpt-4o", "pricing": {"input": 1000, "output": 1000}}
        ]
    }
    config = limited_config(
        fake_openai[1].url, redis_server, {"budget": {"usd": 0.05, "period": "day"}}, **route
    )
    proxy = start_proxy(config)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)
    for served in range(1, 4):
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=PROMPT, stream=True))  # type: ignore[arg-type]
        assert chunks
        wait_until(lambda n=served: _usage(proxy)["day"]["requests"] == n, message="spend settled")
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT, stream=True)  # type: ignore[arg-type]
    assert raised.value.code == "insufficient_quota"
    assert "daily budget of $0.05" in raised.value.message
    report = _usage(proxy)
    assert report["budget"]["spent_usd"] == pytest.approx(0.054)
    assert report["day"]["output_tokens"] == 21 and report["budget"]["remaining_usd"] == 0
    assert proxy.metric("sluice_budget_used_ratio", tenant="team-a") == pytest.approx(1.08)
    assert proxy.metric("sluice_cost_usd_total", tenant="team-a") == pytest.approx(0.054)


def _usage(proxy: ProxyProcess, key: str = TENANT_KEY) -> dict[str, Any]:
    response = httpx.get(f"{proxy.url}/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def test_killing_redis_under_fail_open_fails_no_request(
    fake_openai: Upstream, redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess]
) -> None:
    # Killing Redis refuses connections at once; 1s only bounds decisions slowed by the burst itself.
    config = limited_config(
        fake_openai[1].url, redis_server, {"limits": {"requestsPerMinute": 120}}, timeout="1s"
    )
    proxy = start_proxy(config)
    body = {"model": "gpt-4o", "messages": PROMPT}
    first = asyncio.create_task(_burst([proxy.url], 50, body))
    await asyncio.sleep(0)  # let the burst start before the outage
    redis_server.kill()
    during = await _burst([proxy.url], 50, body)
    assert _statuses(await first) == {200: 50} and _statuses(during) == {200: 50}
    assert proxy.metric("sluice_limiter_degraded") == 1
    redis_server.start()
    wait_until(lambda: proxy.metric("sluice_limiter_degraded") == 0, message="the limiter to recover")
    # Redis restarted empty: 120 more fit. The local limiter (50 in its window) would allow only 70.
    assert _statuses(await _burst([proxy.url], 130, body)) == {200: 120, 429: 10}


async def test_killing_redis_under_fail_closed_answers_clean_503s(
    fake_openai: Upstream, redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess]
) -> None:
    config = limited_config(fake_openai[1].url, redis_server, {"limits": {"requestsPerMinute": 100}})
    config["redis"]["failMode"] = "closed"
    proxy = start_proxy(config)
    body = {"model": "gpt-4o", "messages": PROMPT}
    redis_server.kill()
    responses = await _burst([proxy.url], 20, body)
    assert _statuses(responses) == {503: 20}
    assert responses[0].json()["error"]["code"] == "service_unavailable"
    assert responses[0].headers["Retry-After"] == "1"
    redis_server.start()
    wait_until(lambda: proxy.metric("sluice_limiter_degraded") == 0, message="the limiter to recover")
    assert _statuses(await _burst([proxy.url], 5, body)) == {200: 5}


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "in-process"])
def test_cache_hits_are_free_isolated_per_tenant_and_stream(
    with_redis: bool,
    fake_openai: Upstream,
    start_proxy: Callable[..., ProxyProcess],
    request: pytest.FixtureRequest,
) -> None:
    fake, server = fake_openai
    redis = request.getfixturevalue("redis_server") if with_redis else None
    proxy = start_proxy(limited_config(server.url, redis, {}, cache={"ttl": "1m"}))
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)

    def ask(stream: bool = False, key: str = TENANT_KEY, **extra: Any) -> Any:
        other = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)
        return other.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=PROMPT,
            temperature=0,
            stream=stream,
            **extra,  # type: ignore[arg-type]
        )

    assert ask().headers["x-sluice-cache"] == "miss"
    hit = ask()
    assert hit.headers["x-sluice-cache"] == "hit"
    assert hit.parse().choices[0].message.content == "hello from upstream"
    streamed = ask(stream=True, stream_options={"include_usage": True})
    assert streamed.headers["x-sluice-cache"] == "hit"
    chunks = list(streamed.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello from upstream"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 18
    assert ask(key=OTHER_KEY).headers["x-sluice-cache"] == "miss"  # another tenant's cache
    warm = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=PROMPT, temperature=0.5)  # type: ignore[arg-type]
    assert "x-sluice-cache" not in warm.headers
    assert len(fake.requests) == 3
    assert proxy.metric("sluice_cache_requests_total", result="hit") == 2
    assert _usage(proxy)["day"]["requests"] == 2  # the miss and the warm request; hits are free


def test_a_client_one_request_at_a_time_never_meets_a_concurrency_limit_of_one(
    fake_openai: Upstream, redis_server: RedisServer, start_proxy: Callable[..., ProxyProcess]
) -> None:
    """Each response's slot is freed (after its turn) before the client's next request is admitted."""
    config = limited_config(fake_openai[1].url, redis_server, {"limits": {"concurrency": 1}}, timeout="1s")
    proxy = start_proxy(config)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)
    for i in range(30):  # streamed and not, back to back on one connection
        if i % 2:
            chunks = list(client.chat.completions.create(model="gpt-4o", messages=PROMPT, stream=True))
            assert any(chunk.choices for chunk in chunks)  # read to its end: the stream is over
        else:
            assert client.chat.completions.create(model="gpt-4o", messages=PROMPT).choices
