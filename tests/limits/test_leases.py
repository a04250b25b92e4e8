"""A busy tenant and route are admitted against quota leased ahead of them: no round trip per
request, never more than a limit, and what was leased and not used is given back exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from sluice_proxy import metrics
from sluice_proxy.config.schema import RedisSettings
from sluice_proxy.errors import RateLimitError
from sluice_proxy.limits import Admission, Limiter
from sluice_proxy.limits.keys import tenant_tag
from sluice_proxy.limits.leases import MAX_LEASE, MIN_DEMAND
from sluice_proxy.providers.base import Usage
from sluice_proxy.runtime import RuntimeRoute, RuntimeTenant
from tests.limits.conftest import make_runtime
from tests.proxy_process import wait_until
from tests.redis_server import RedisServer

BIG = {"requestsPerMinute": 100_000, "tokensPerMinute": 10_000_000, "concurrency": 100_000}


@pytest.fixture
async def limiters(redis_server: RedisServer) -> AsyncIterator[Callable[..., Limiter]]:
    """Starts limiters (replicas) on the test's Redis; closes them at the end."""
    started: list[Limiter] = []

    async def start(**settings: object) -> Limiter:
        limiter = await Limiter.start(RedisSettings(url=redis_server.url, timeout="2s", **settings))  # type: ignore[arg-type]
        started.append(limiter)
        return limiter

    yield start  # type: ignore[misc]
    for limiter in started:
        await limiter.close()


def _window(server: RedisServer, tenant: str, suffix: str) -> int:
    """What a tenant's ``rpm`` or ``tpm`` window holds now, read with redis-py."""
    with server.client() as client:
        return int(client.hget(f"{tenant_tag('sluice', tenant)}:{suffix}", "sum") or 0)  # type: ignore[arg-type]


def _slots(server: RedisServer, tenant: str) -> int:
    with server.client() as client:
        return int(client.zcard(f"{tenant_tag('sluice', tenant)}:concurrency"))  # type: ignore[arg-type]


async def _early_in_a_second(server: RedisServer) -> None:
    """Wait until Redis's clock is in the first half of a second.

    Around the end of each second a replica asks for no batch (one would expire at once), so
    requests there are decided by Redis one by one: tests that count calls start away from it.
    """
    with server.client() as client:
        _, micros = client.time()  # type: ignore[misc]
    if micros >= 500_000:
        await asyncio.sleep((1_000_000 - micros) / 1_000_000 + 0.02)


async def _one_at_a_time(
    limiter: Limiter, tenant: RuntimeTenant, route: RuntimeRoute, count: int, tokens: int = 0
) -> list[Admission]:
    """``count`` requests of one client, each admitted after the one before (not settled)."""
    return [await limiter.admit(tenant, route, estimated_tokens=tokens) for _ in range(count)]


async def test_a_busy_tenant_waits_for_no_round_trip_per_request(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    limiter = await limiters()
    (tenant,), route = make_runtime({"limits": BIG})
    await limiter.admit(tenant, route, estimated_tokens=0)  # the scripts are loaded
    await _early_in_a_second(redis_server)
    redis_server.reset_stats()
    admitted = await _one_at_a_time(limiter, tenant, route, 400)
    # Without leases: 400 calls. With them: the requests until the tenant counts as busy, then
    # one call per batch, batches growing with the demand up to MAX_LEASE.
    assert redis_server.script_calls() < 400 // MIN_DEMAND
    # Each admission is its own charge: ids unique, and each found a different count in the window.
    assert len({a.id for a in admitted}) == 400
    remaining = {int(a.headers["x-ratelimit-remaining-requests"]) for a in admitted}
    assert len(remaining) == 400 and min(remaining) <= 100_000 - 401


async def test_with_leases_off_every_request_asks_redis(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    limiter = await limiters(quota_leases=False)
    (tenant,), route = make_runtime({"limits": BIG})
    await limiter.admit(tenant, route, estimated_tokens=0)
    redis_server.reset_stats()
    await _one_at_a_time(limiter, tenant, route, 100)
    assert redis_server.script_calls() == 100


async def test_small_limits_are_checked_per_request(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    # A quarter of 12 has no room for the smallest batch: every request is Redis's decision.
    limiter = await limiters()
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 12}})
    await limiter.admit(tenant, route, estimated_tokens=0)
    redis_server.reset_stats()
    await _one_at_a_time(limiter, tenant, route, 11)
    assert redis_server.script_calls() == 11
    with pytest.raises(RateLimitError):
        await limiter.admit(tenant, route, estimated_tokens=0)


async def test_replicas_on_leases_never_admit_beyond_the_limit_and_give_back_exactly(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    """Three replicas, each one busy client, race to a limit of 600 requests a minute."""
    replicas = [await limiters() for _ in range(3)]
    limits = {"requestsPerMinute": 600, "tokensPerMinute": 1_000_000, "concurrency": 10_000}
    (tenant,), route = make_runtime({"limits": limits})
    admitted: list[int] = []

    async def client(limiter: Limiter) -> None:
        count = 0
        while True:
            try:
                admission = await limiter.admit(tenant, route, estimated_tokens=50)
            except RateLimitError:
                break
            count += 1
            limiter.settle_soon(admission, Usage(input_tokens=20, output_tokens=10), 0.0)
        admitted.append(count)

    await asyncio.gather(*(client(limiter) for limiter in replicas))
    total = sum(admitted)
    assert total <= 600
    # A replica stops at its first refusal; a batch granted just before it is all it can strand.
    assert total >= 600 - len(replicas) * MAX_LEASE
    for limiter in replicas:
        await limiter.close()  # gives back what each still holds
    # Placeholders charged and never used are refunded: the windows hold the requests and
    # their real tokens only, and no concurrency slot is left taken.
    assert _window(redis_server, tenant.name, "rpm") == total
    assert _window(redis_server, tenant.name, "tpm") == 30 * total
    assert _slots(redis_server, tenant.name) == 0


async def test_unused_quota_is_given_back_when_its_second_ends(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    limiter = await limiters()
    (tenant,), route = make_runtime({"limits": BIG})
    leased, unused = _sample("sluice_ratelimit_leased_total"), _sample("sluice_ratelimit_leased_unused_total")
    admitted = await _one_at_a_time(limiter, tenant, route, 100, tokens=7)
    # The client stopped; the limiter still holds part of a batch until its Redis second ends.

    def given_back() -> bool:
        return (
            _window(redis_server, tenant.name, "rpm") == 100
            and _window(redis_server, tenant.name, "tpm") == sum(a.reserved_tokens for a in admitted)
            and _slots(redis_server, tenant.name) == 100
        )

    await asyncio.to_thread(wait_until, given_back, 5.0, message="the unused placeholders given back")
    # Both counted: what was leased, and what of it went back unused.
    granted = _sample("sluice_ratelimit_leased_total") - leased
    returned = _sample("sluice_ratelimit_leased_unused_total") - unused
    assert 0 < returned < granted


def _sample(name: str) -> float:
    metrics.exposition()  # what a scrape reads
    return metrics.REGISTRY.get_sample_value(name) or 0.0


async def test_a_request_wanting_more_tokens_than_a_placeholder_holds_asks_redis(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    limiter = await limiters()
    (tenant,), route = make_runtime({"limits": BIG})
    await _early_in_a_second(redis_server)  # the batches below expire no earlier than they are used
    await _one_at_a_time(limiter, tenant, route, 3 * MIN_DEMAND, tokens=10)
    redis_server.reset_stats()
    big = await limiter.admit(tenant, route, estimated_tokens=5_000)
    assert redis_server.script_calls() >= 1
    assert big.reserved_tokens == 5_000
    # The next batch reserves as much as the largest request since the last one wanted.
    later = await _one_at_a_time(limiter, tenant, route, 3 * MAX_LEASE, tokens=10)
    assert max(a.reserved_tokens for a in later) == 5_000
    assert min(a.reserved_tokens for a in later) == 10


async def test_leased_admissions_are_refused_when_the_budget_is_spent(
    limiters: Callable[..., Limiter],
) -> None:
    limiter = await limiters()
    (tenant,), route = make_runtime({"limits": BIG, "budget": {"usd": 1.0, "period": "day"}})
    first = await _one_at_a_time(limiter, tenant, route, 3 * MIN_DEMAND)
    for admission in first:
        await limiter.settle(admission, Usage(input_tokens=1), 0.05)  # $1.20 in all
    # What was leased before the spend landed may still be used; no new batch, and Redis refuses.
    with pytest.raises(RateLimitError, match="budget"):
        for _ in range(2 * MAX_LEASE):  # at most a batch and a half is held
            await limiter.admit(tenant, route, estimated_tokens=0)


async def test_a_replica_refuses_none_of_its_requests_while_a_batch_is_on_its_way(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    """Requests that arrive while a batch is on its way wait for it: were they sent to Redis,
    they would be decided after the batch, refused for quota their own replica then holds."""
    limiter = await limiters()
    (tenant,), route = make_runtime({"limits": {"requestsPerMinute": 200, "concurrency": 10_000}})
    await _one_at_a_time(limiter, tenant, route, 40)  # busy: a lease is held
    with redis_server.client() as client:
        client.client_pause(500, all=False)  # write commands (the scripts) wait: replies come late
    first = [asyncio.ensure_future(limiter.admit(tenant, route, estimated_tokens=0)) for _ in range(20)]
    for _ in range(5):
        await asyncio.sleep(0)  # event-loop turns: the batch the first ones asked for is sent
    rest = [asyncio.ensure_future(limiter.admit(tenant, route, estimated_tokens=0)) for _ in range(200)]
    outcomes = await asyncio.gather(*first, *rest, return_exceptions=True)
    assert all(isinstance(o, Admission | RateLimitError) for o in outcomes)
    assert 40 + sum(isinstance(o, Admission) for o in outcomes) == 200


async def _settled_one_at_a_time(
    limiter: Limiter, tenant: RuntimeTenant, route: RuntimeRoute, count: int
) -> None:
    """``count`` requests of one client, each settled (in the background) before the next comes."""
    for _ in range(count):
        admission = await limiter.admit(tenant, route, estimated_tokens=10)
        limiter.settle_soon(admission, Usage(input_tokens=5, output_tokens=3), 0.0)
        await asyncio.sleep(0)  # the event-loop turn in which a response is written


async def test_settlements_of_leased_requests_go_to_redis_together(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    limiter = await limiters()
    (tenant,), route = make_runtime({"limits": BIG})
    await _early_in_a_second(redis_server)
    await _settled_one_at_a_time(limiter, tenant, route, 3 * MAX_LEASE)  # busy: leased
    redis_server.reset_stats()
    await _settled_one_at_a_time(limiter, tenant, route, 200)
    await limiter.close()
    # Per turn, 200 settlement calls; gathered over a few milliseconds, a handful, plus batches.
    assert redis_server.script_calls() < 50
    assert _window(redis_server, tenant.name, "tpm") == 8 * (3 * MAX_LEASE + 200)  # every one settled
    assert _slots(redis_server, tenant.name) == 0


async def test_a_tight_concurrency_limit_settles_each_turn(
    limiters: Callable[..., Limiter], redis_server: RedisServer
) -> None:
    # 200 slots: leased, but with fewer than ROOMY free a finished request's slot is freed at once.
    limiter = await limiters()
    (tenant,), route = make_runtime({"limits": {**BIG, "concurrency": 200}})
    await _settled_one_at_a_time(limiter, tenant, route, 3 * MAX_LEASE)
    redis_server.reset_stats()
    await _settled_one_at_a_time(limiter, tenant, route, 200)
    assert redis_server.script_calls() >= 200
