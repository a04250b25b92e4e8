"""A tick's admissions and settlements of one tenant and route share one script call, and
decide exactly what one call per request would have decided, in the same order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sluice_proxy import metrics
from sluice_proxy.config.schema import RedisSettings
from sluice_proxy.errors import RateLimitError
from sluice_proxy.limits import Limiter
from sluice_proxy.limits.batch import ScriptCall
from sluice_proxy.limits.headers import go_duration
from sluice_proxy.providers.base import Usage
from tests.limits.conftest import make_runtime
from tests.redis_server import RedisServer


@pytest.fixture
async def limiter(redis_server: RedisServer) -> AsyncIterator[Limiter]:
    started = await Limiter.start(RedisSettings(url=redis_server.url, timeout="2s"))
    yield started
    await started.close()


async def test_a_tick_of_admissions_is_one_call_decided_in_order(
    limiter: Limiter, redis_server: RedisServer
) -> None:
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 5, "tokensPerMinute": 1000}})
    await limiter.admit(tenant, route, estimated_tokens=0)  # the scripts are loaded
    redis_server.reset_stats()
    results = await asyncio.gather(
        *(limiter.admit(tenant, route, estimated_tokens=10) for _ in range(7)), return_exceptions=True
    )
    assert redis_server.script_calls() == 1
    admitted, refused = results[:4], results[4:]
    assert all(isinstance(r, RateLimitError) for r in refused), results
    # Each admitted request sees the charges of the ones before it, as if it had run alone.
    assert [a.headers["x-ratelimit-remaining-requests"] for a in admitted] == ["3", "2", "1", "0"]  # type: ignore[union-attr]
    assert [a.headers["x-ratelimit-remaining-tokens"] for a in admitted] == ["990", "980", "970", "960"]  # type: ignore[union-attr]
    for error in refused:
        assert isinstance(error, RateLimitError) and "5 of 5 requests per minute" in error.message
        assert error.headers["x-ratelimit-remaining-tokens"] == "960"  # a refused request is charged nothing


async def test_the_first_charges_of_an_empty_window_reset_with_it(limiter: Limiter) -> None:
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 10}})
    first, second = await asyncio.gather(
        *(limiter.admit(tenant, route, estimated_tokens=0) for _ in range(2))
    )
    assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
    # The second found the first's charge, made this second: it leaves a minute after that second.
    now = second.admitted_ms
    assert second.headers["x-ratelimit-reset-requests"] == go_duration(now // 1000 * 1000 + 60_000 - now)


async def test_a_tick_of_settlements_is_one_call_that_refunds_no_more_than_was_charged(
    limiter: Limiter, redis_server: RedisServer
) -> None:
    (tenant,), route = make_runtime({"limits": {"tokensPerMinute": 100, "concurrency": 4}})
    admissions = await asyncio.gather(*(limiter.admit(tenant, route, estimated_tokens=30) for _ in range(4)))
    await limiter.settle(admissions.pop(), Usage(), 0.0)  # the settlement script is loaded
    redis_server.reset_stats()
    # 90 reserved; real usage 10, 5 and 45 tokens: refunds of 20 and 25, then 15 more charged.
    usages = [Usage(input_tokens=10), Usage(input_tokens=5), Usage(input_tokens=45)]
    await asyncio.gather(*(limiter.settle(a, u, 0.001) for a, u in zip(admissions, usages, strict=True)))
    assert redis_server.script_calls() == 1
    after = await limiter.admit(tenant, route, estimated_tokens=0)
    assert after.headers["x-ratelimit-remaining-tokens"] == "40"  # 100 - (10 + 5 + 45)
    with redis_server.client() as client:
        usage_key = next(k for k in client.keys("*usage:day*"))
        usage = client.hgetall(usage_key)
        slots = [k for k in client.keys("*") if client.type(k) == b"zset"]
        assert usage[b"requests"] == b"4" and usage[b"input_tokens"] == b"60"
        assert usage[b"spend_micro"] == b"3000"
        assert [client.zcard(k) for k in slots] == [1]  # only `after` holds a slot


async def test_refunds_in_one_call_stop_at_what_their_second_holds(
    limiter: Limiter, redis_server: RedisServer
) -> None:
    (tenant,), route = make_runtime({"limits": {"tokensPerMinute": 1000}})
    admissions = await asyncio.gather(*(limiter.admit(tenant, route, estimated_tokens=10) for _ in range(2)))
    with redis_server.client() as client:
        key = next(k for k in client.keys("*tpm"))
        client.hincrby(key, next(f for f in client.hkeys(key) if f.isdigit()), -15)  # 5 left in the bucket
        client.hincrby(key, "sum", -15)
    # Each over-reserved by 10: run alone, the first refunds 5 (all there is), the second none.
    await asyncio.gather(*(limiter.settle(a, Usage(), 0.0) for a in admissions))
    with redis_server.client() as client:
        buckets = {f: int(v) for f, v in client.hgetall(key).items() if f.isdigit()}
        assert list(buckets.values()) == [0] and int(client.hget(key, "sum") or 0) == 0


async def test_each_settlement_of_a_call_sees_the_spend_up_to_it(
    limiter: Limiter, caplog: pytest.LogCaptureFixture
) -> None:
    # Budget $1 with an alert at 50%: four settlements of $0.20 cross it at the third, once.
    (tenant,), route = make_runtime({"budget": {"usd": 1.0, "period": "day", "alertPercent": 50}})
    admissions = await asyncio.gather(*(limiter.admit(tenant, route, estimated_tokens=0) for _ in range(4)))
    with caplog.at_level("WARNING", logger="sluice.limits"):
        await asyncio.gather(*(limiter.settle(a, Usage(input_tokens=1), 0.2) for a in admissions))
    alerts = [r for r in caplog.records if "of its daily budget" in r.getMessage()]
    assert len(alerts) == 1 and "60%" in alerts[0].getMessage()
    # The gauge ends at the spend after the last of them, not at an earlier one's.
    metrics.exposition()  # what a scrape reads: the figures buffered since the last one
    assert metrics.REGISTRY.get_sample_value("sluice_budget_used_ratio", {"tenant": "team-0"}) == 0.8


async def test_a_burst_beyond_one_call_is_split_in_order(limiter: Limiter, redis_server: RedisServer) -> None:
    (tenant,), route = make_runtime(
        {"limits": {"requestsPerMinute": ScriptCall.MAX_ITEMS + 10, "concurrency": 10_000}}
    )
    await limiter.admit(tenant, route, estimated_tokens=0)  # the scripts are loaded
    redis_server.reset_stats()
    burst = ScriptCall.MAX_ITEMS + 40
    results = await asyncio.gather(
        *(limiter.admit(tenant, route, estimated_tokens=0) for _ in range(burst)), return_exceptions=True
    )
    assert redis_server.script_calls() == 2
    admitted = [r for r in results if not isinstance(r, BaseException)]
    assert len(admitted) == ScriptCall.MAX_ITEMS + 9  # one went before the burst
    assert all(isinstance(r, RateLimitError) for r in results[ScriptCall.MAX_ITEMS + 9 :])
    # The second call found the first's charges: the remaining count runs on across the split.
    remaining = [int(a.headers["x-ratelimit-remaining-requests"]) for a in admitted]
    assert remaining == list(range(ScriptCall.MAX_ITEMS + 8, -1, -1))


async def test_counts_in_the_hundreds_of_trillions_stay_exact_integers(
    limiter: Limiter, redis_server: RedisServer
) -> None:
    # The scripts compute in Lua numbers (doubles) and write the results: digits, never "1.2e+14".
    (tenant,), route = make_runtime({"limits": {"tokensPerMinute": 10**16}})
    big = 123_456_789_012_345  # tokens, and micro-dollars of spend ($123M)
    for _ in range(2):
        admission = await limiter.admit(tenant, route, estimated_tokens=big)
        await limiter.settle(admission, Usage(input_tokens=big), big / 1_000_000)
    with redis_server.client() as client:
        window = next(k for k in client.keys("*tpm"))
        usage = client.hgetall(next(k for k in client.keys("*usage:day*")))
        assert client.hget(window, "sum") == str(2 * big).encode()
        assert usage[b"spend_micro"] == str(2 * big).encode()
        assert usage[b"input_tokens"] == str(2 * big).encode()
    snapshot = await limiter.snapshot(tenant)
    assert snapshot["day"]["spend_usd"] == pytest.approx(2 * big / 1_000_000)


async def _next_turn() -> None:
    """Yield for one event-loop turn, as a client's next request arrives in a later turn than the response."""
    await asyncio.sleep(0)


async def test_a_settlement_frees_its_slot_before_a_later_admission_on_a_fresh_redis(
    limiter: Limiter,
) -> None:
    """The scripts load first on every connection: a settlement is never held up by a NOSCRIPT retry
    that lets the next admission (sent after it) find its slot still taken."""
    (tenant,), route = make_runtime({"limits": {"concurrency": 1}})
    for _ in range(3):
        admission = await limiter.admit(tenant, route, estimated_tokens=0)
        limiter.settle_soon(admission, Usage(input_tokens=1, output_tokens=1), 0.0)
        await _next_turn()  # the settlement is on its way; the next admission goes after it
    assert not limiter.degraded
