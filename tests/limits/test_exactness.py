"""Several limiters sharing one Redis enforce one exact, sliding limit between them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sluice_proxy.config.schema import RedisSettings
from sluice_proxy.errors import RateLimitError
from sluice_proxy.limits import Limiter
from tests.limits.conftest import make_runtime
from tests.redis_server import RedisServer


@pytest.fixture
async def limiters(redis_server: RedisServer) -> AsyncIterator[list[Limiter]]:
    """Three limiters with their own connection pools: three replicas."""
    started = [await Limiter.start(RedisSettings(url=redis_server.url, timeout="2s")) for _ in range(3)]
    yield started
    for limiter in started:
        await limiter.close()


async def _admitted(attempts: list[asyncio.Future[object] | object]) -> int:
    results = await asyncio.gather(*attempts, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, RateLimitError):
            raise result
    return sum(not isinstance(r, BaseException) for r in results)


async def test_three_replicas_admit_exactly_the_request_limit(limiters: list[Limiter]) -> None:
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 60}})
    burst = [limiters[i % 3].admit(tenant, route, estimated_tokens=0) for i in range(300)]
    assert await _admitted(burst) == 60


async def test_three_replicas_admit_exactly_the_token_limit(limiters: list[Limiter]) -> None:
    (tenant,), route = make_runtime({"limits": {"tokensPerMinute": 180}})
    burst = [limiters[i % 3].admit(tenant, route, estimated_tokens=18) for i in range(300)]
    assert await _admitted(burst) == 10


async def test_a_rejection_names_the_limit_and_carries_openai_headers(limiters: list[Limiter]) -> None:
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 2, "tokensPerMinute": 1000}})
    first = await limiters[0].admit(tenant, route, estimated_tokens=10)
    assert first.headers == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "990",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    await limiters[1].admit(tenant, route, estimated_tokens=10)
    with pytest.raises(RateLimitError) as raised:
        await limiters[2].admit(tenant, route, estimated_tokens=10)
    error = raised.value
    assert "tenant 'team-0'" in error.message and "2 of 2 requests per minute" in error.message
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(error.headers["Retry-After"]) <= 60
    assert error.headers["x-ratelimit-remaining-tokens"] == "980"


async def test_the_route_ceiling_is_shared_by_every_tenant(limiters: list[Limiter]) -> None:
    tenants, route = make_runtime(route={"limits": {"requestsPerMinute": 5}}, tenants=3)
    burst = [limiters[i % 3].admit(tenants[i % 3], route, estimated_tokens=0) for i in range(30)]
    assert await _admitted(burst) == 5


async def test_model_limits_apply_per_tenant(limiters: list[Limiter]) -> None:
    tenants, route = make_runtime({"modelLimits": [{"model": "gpt-4o", "requestsPerMinute": 3}]}, tenants=2)
    for tenant in tenants:
        burst = [limiters[i % 3].admit(tenant, route, estimated_tokens=0) for i in range(10)]
        assert await _admitted(burst) == 3


async def test_concurrency_slots_are_freed_exactly_once(limiters: list[Limiter]) -> None:
    (tenant,), route = make_runtime({"limits": {"concurrency": 2}})
    first = await limiters[0].admit(tenant, route, estimated_tokens=0)
    await limiters[1].admit(tenant, route, estimated_tokens=0)
    with pytest.raises(RateLimitError, match="2 of 2 concurrent requests"):
        await limiters[2].admit(tenant, route, estimated_tokens=0)
    await limiters[0].settle(first, None, 0.0)
    await limiters[0].settle(first, None, 0.0)  # a second settle frees nothing more
    await limiters[2].admit(tenant, route, estimated_tokens=0)
    with pytest.raises(RateLimitError):
        await limiters[2].admit(tenant, route, estimated_tokens=0)


async def _redis_now_ms(server: RedisServer) -> int:
    with server.client() as client:
        seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_requests_slide_instead_of_resetting_on_the_minute(
    limiters: list[Limiter], redis_server: RedisServer
) -> None:
    """A burst 58 s ago still counts (a fixed window would have reset at the minute boundary)."""
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 10}})
    second = await _redis_now_ms(redis_server) // 1000
    with redis_server.client() as client:
        client.hset("{sluice}:t:team-0:rpm", str(second - 58), 10)
    with pytest.raises(RateLimitError) as raised:
        await limiters[0].admit(tenant, route, estimated_tokens=0)
    assert int(raised.value.headers["Retry-After"]) <= 3
    with redis_server.client() as client:
        client.delete("{sluice}:t:team-0:rpm")
        client.hset("{sluice}:t:team-0:rpm", str(second - 61), 10)
    await limiters[0].admit(tenant, route, estimated_tokens=0)


async def test_tokens_slide_per_second(limiters: list[Limiter], redis_server: RedisServer) -> None:
    (tenant,), route = make_runtime({"limits": {"tokensPerMinute": 100}})
    second = await _redis_now_ms(redis_server) // 1000
    with redis_server.client() as client:
        client.hset("{sluice}:t:team-0:tpm", str(second - 58), 100)
    with pytest.raises(RateLimitError, match="100 of 100 tokens per minute"):
        await limiters[0].admit(tenant, route, estimated_tokens=1)
    with redis_server.client() as client:
        client.delete("{sluice}:t:team-0:tpm")
        client.hset("{sluice}:t:team-0:tpm", str(second - 61), 100)
    await limiters[0].admit(tenant, route, estimated_tokens=1)


@pytest.mark.parametrize(("age", "admitted"), [(58, False), (61, True)])
async def test_the_running_total_drops_what_leaves_the_window(
    limiters: list[Limiter], redis_server: RedisServer, age: int, admitted: bool
) -> None:
    """The window's cached ``sum`` is trusted only while its ``tail`` second still counts."""
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 10}})
    second = await _redis_now_ms(redis_server) // 1000
    with redis_server.client() as client:
        client.hset("{sluice}:t:team-0:rpm", mapping={str(second - age): 10, "sum": 10, "tail": second - age})
    if admitted:
        admission = await limiters[0].admit(tenant, route, estimated_tokens=0)
        assert admission.headers["x-ratelimit-remaining-requests"] == "9"
        with redis_server.client() as client:
            state = client.hgetall("{sluice}:t:team-0:rpm")
        assert state == {str(second).encode(): b"1", b"sum": b"1", b"tail": str(second).encode()} or (
            # the admission may have landed in the next second
            state[b"sum"] == b"1" and str(second - age).encode() not in state
        )
    else:
        with pytest.raises(RateLimitError, match="10 of 10 requests per minute"):
            await limiters[0].admit(tenant, route, estimated_tokens=0)


async def test_usage_hashes_expire_once_their_period_is_kept_long_enough(
    limiters: list[Limiter], redis_server: RedisServer
) -> None:
    """The TTL is set when a usage hash is made (period end + retention) and not moved after."""
    from sluice_proxy.limits.keys import USAGE_RETENTION, current_periods, usage_key_in
    from sluice_proxy.providers.base import Usage

    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 100}})
    for _ in range(2):
        admission = await limiters[0].admit(tenant, route, estimated_tokens=0)
        await limiters[0].settle(admission, Usage(input_tokens=3, output_tokens=4), 0.001)
    periods = current_periods()
    with redis_server.client() as client:
        for period in ("day", "month"):
            key = usage_key_in("sluice", "team-0", period, periods[period].id)
            ttl = client.ttl(key)
            expected = periods[period].end_ms // 1000 - periods.second + USAGE_RETENTION.total_seconds()
            assert expected - 5 <= ttl <= expected
            usage = client.hgetall(key)
            assert usage[b"requests"] == b"2" and usage[b"input_tokens"] == b"6"
            assert usage[b"spend_micro"] == b"2000"
            assert b"cached_input_tokens" not in usage  # zeros are not written; readers count them as 0


async def test_window_hashes_expire_a_window_after_their_newest_bucket(
    limiters: list[Limiter], redis_server: RedisServer
) -> None:
    """Admission and settlement each give a window hash its TTL when they open a bucket in it."""
    from sluice_proxy.providers.base import Usage

    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 100, "tokensPerMinute": 1000}})
    rpm, tpm = "{sluice}:t:team-0:rpm", "{sluice}:t:team-0:tpm"
    admission = await limiters[0].admit(tenant, route, estimated_tokens=0)  # one request, no tokens
    with redis_server.client() as client:
        assert 59_000 < client.pttl(rpm) <= 61_000
        assert client.hget(rpm, "sum") == b"1"
        assert not client.exists(tpm)
    await limiters[0].settle(admission, Usage(input_tokens=6, output_tokens=4), 0.0)  # beyond the reservation
    with redis_server.client() as client:
        assert 59_000 < client.pttl(tpm) <= 61_000
        assert client.hget(tpm, "sum") == b"10"


async def test_settlement_reconciles_the_token_reservation(limiters: list[Limiter]) -> None:
    from sluice_proxy.providers.base import Usage

    (tenant,), route = make_runtime({"limits": {"tokensPerMinute": 100}})
    admission = await limiters[0].admit(tenant, route, estimated_tokens=90)
    await limiters[0].settle(admission, Usage(input_tokens=5, output_tokens=5), 0.0)
    after = await limiters[1].admit(tenant, route, estimated_tokens=1)
    assert after.headers["x-ratelimit-remaining-tokens"] == "89"  # 100 - 10 real - 1 reserved
    await limiters[1].settle(after, Usage(input_tokens=60, output_tokens=40), 0.0)
    with pytest.raises(RateLimitError):
        await limiters[2].admit(tenant, route, estimated_tokens=1)
