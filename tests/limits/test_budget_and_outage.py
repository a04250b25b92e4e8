"""Budgets stop a tenant; a Redis outage degrades to the local limiter (open) or 503s (closed)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from sluice_proxy.config.schema import RedisSettings
from sluice_proxy.errors import BudgetExceededError, RateLimitError, ServiceUnavailableError
from sluice_proxy.limits import Limiter
from sluice_proxy.limits.limiter import TIMEOUTS_BEFORE_DEGRADED
from sluice_proxy.providers.base import Usage
from tests.limits.conftest import make_runtime
from tests.redis_server import RedisServer


async def _eventually(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting for the limiter"
        await asyncio.sleep(0.02)


async def test_a_budget_stops_the_tenant_once_crossed(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    (tenant,), route = make_runtime({"budget": {"usd": 0.01, "period": "day", "alertPercent": 50}})
    limiter = await Limiter.start(RedisSettings(url=redis_server.url, timeout="2s"))
    try:
        for _ in range(2):
            admission = await limiter.admit(tenant, route, estimated_tokens=0)
            await limiter.settle(admission, Usage(input_tokens=100, output_tokens=20), 0.006)
        alerts = [r.getMessage() for r in caplog.records if r.name == "sluice.limits"]
        assert alerts == ["tenant 'team-0' has spent 60% of its daily budget of $0.01"]  # once, at 50%
        with pytest.raises(BudgetExceededError) as raised:
            await limiter.admit(tenant, route, estimated_tokens=0)
        error = raised.value
        assert error.status == 429 and error.type == "insufficient_quota"
        assert "daily budget of $0.01" in error.message and "resets at" in error.message
        assert int(error.headers["Retry-After"]) > 0
        assert redis_server.spend("team-0", "day") == 12_000
        assert redis_server.spend("team-0", "month") == 12_000
        report = await limiter.snapshot(tenant)
        assert report["budget"]["spent_usd"] == pytest.approx(0.012)
        assert report["budget"]["remaining_usd"] == 0
        assert report["day"]["input_tokens"] == 200 and report["day"]["requests"] == 2
    finally:
        await limiter.close()


async def test_fail_open_serves_through_an_outage_and_replays_usage(redis_server: RedisServer) -> None:
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 5}})
    limiter = await Limiter.start(RedisSettings(url=redis_server.url, timeout="50ms"))
    try:
        admission = await limiter.admit(tenant, route, estimated_tokens=0)
        redis_server.kill()
        await limiter.settle(admission, Usage(input_tokens=3, output_tokens=4), 0.25)
        assert limiter.degraded
        # The local limiter now enforces the limit on this replica by itself.
        admitted = []
        for _ in range(5):
            admitted.append(await limiter.admit(tenant, route, estimated_tokens=0))
        with pytest.raises(RateLimitError):
            await limiter.admit(tenant, route, estimated_tokens=0)
        await limiter.settle(admitted[0], Usage(input_tokens=1, output_tokens=1), 0.5)
        redis_server.start()
        await _eventually(lambda: not limiter.degraded)
        assert redis_server.spend("team-0", "month") == 750_000  # both settlements replayed
        for _ in range(5):
            await limiter.admit(tenant, route, estimated_tokens=0)
        with pytest.raises(RateLimitError):  # limited by Redis again
            await limiter.admit(tenant, route, estimated_tokens=0)
    finally:
        await limiter.close()


async def test_fail_closed_answers_503_until_redis_is_back(redis_server: RedisServer) -> None:
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 100}})
    limiter = await Limiter.start(RedisSettings(url=redis_server.url, timeout="50ms", fail_mode="closed"))
    try:
        redis_server.kill()
        for _ in range(3):
            with pytest.raises(ServiceUnavailableError) as raised:
                await limiter.admit(tenant, route, estimated_tokens=0)
            assert raised.value.headers["Retry-After"] == "1"
        redis_server.start()
        await _eventually(lambda: not limiter.degraded)
        await limiter.admit(tenant, route, estimated_tokens=0)
    finally:
        await limiter.close()


async def test_a_stalled_redis_cannot_hold_a_request(redis_server: RedisServer) -> None:
    """DEBUG SLEEP freezes the server: decisions time out and the local limiter serves."""
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 100}})
    limiter = await Limiter.start(RedisSettings(url=redis_server.url, timeout="50ms"))
    stall = asyncio.create_task(asyncio.to_thread(_debug_sleep, redis_server, 1))
    try:
        await _eventually(lambda: _stalled(redis_server))
        # Each timed-out decision is served locally; only repeated timeouts mean "Redis is away"
        # (one alone may be event-loop lag), and then the limiter degrades.
        for served in range(TIMEOUTS_BEFORE_DEGRADED):
            assert not limiter.degraded
            admission = await limiter.admit(tenant, route, estimated_tokens=0)
            assert admission.headers["x-ratelimit-remaining-requests"] == str(99 - served)
        assert limiter.degraded
        await stall
        await _eventually(lambda: not limiter.degraded)
    finally:
        await stall
        await limiter.close()


def _debug_sleep(server: RedisServer, seconds: int) -> None:
    with server.client(timeout=seconds + 5) as client:
        client.execute_command("DEBUG", "SLEEP", seconds)


def _stalled(server: RedisServer) -> bool:
    """True once the sleeping command holds the server (a PING no longer answers quickly)."""
    with server.client(timeout=0.05) as client:
        try:
            client.ping()
        except redis.TimeoutError:
            return True
    return False


async def test_without_redis_the_same_limits_apply_in_process() -> None:
    (tenant,), route = make_runtime(
        {"limits": {"requestsPerMinute": 3, "concurrency": 2}, "budget": {"usd": 1.0}}
    )
    limiter = await Limiter.start(None)
    first = await limiter.admit(tenant, route, estimated_tokens=0)
    await limiter.admit(tenant, route, estimated_tokens=0)
    with pytest.raises(RateLimitError, match="concurrent"):
        await limiter.admit(tenant, route, estimated_tokens=0)
    await limiter.settle(first, Usage(input_tokens=1), 1.0)
    with pytest.raises(BudgetExceededError, match=r"monthly budget of \$1\.00"):
        await limiter.admit(tenant, route, estimated_tokens=0)
    report = await limiter.snapshot(tenant)
    assert report["month"]["spend_usd"] == 1.0 and not report["limiter_degraded"]
    await limiter.close()


async def test_close_waits_for_the_settlements_still_on_their_way(redis_server: RedisServer) -> None:
    """A replica shutting down still lands the usage of the requests it just answered."""
    (tenant,), route = make_runtime({"budget": {"usd": 10, "period": "month"}})
    limiter = await Limiter.start(RedisSettings(url=redis_server.url, timeout="2s"))
    for _ in range(20):
        admission = await limiter.admit(tenant, route, estimated_tokens=0)
        limiter.settle_soon(admission, Usage(input_tokens=1, output_tokens=1), 0.01)
    await limiter.close()
    assert redis_server.spend("team-0", "month") == 200_000
