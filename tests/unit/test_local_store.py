"""The in-process store keeps Redis's windows: buckets age out of the running total, leases expire."""

from __future__ import annotations

import time

from sluice_proxy.limits.checks import LEASE_MS, WINDOW_MS, Check, Kind
from sluice_proxy.limits.local_store import LocalStore
from sluice_proxy.limits.store import Settlement

REQUESTS = Check(Kind.REQUESTS, "{sluice}:t:a:rpm", 10, WINDOW_MS, "requests")
TOKENS = Check(Kind.TOKENS, "{sluice}:t:a:tpm", 100, WINDOW_MS, "tokens")
SLOTS = Check(Kind.CONCURRENCY, "{sluice}:t:a:concurrency", 1, LEASE_MS, "concurrency")


def _second() -> int:
    return time.time_ns() // 1_000_000_000


async def test_a_full_window_refuses_until_its_buckets_age_out() -> None:
    store = LocalStore()
    store._windows[REQUESTS.key].add(_second() - 58, 10)
    refused = await store.admit([REQUESTS], "r1", 0)
    assert refused.rejected is REQUESTS and refused.used == (10,)
    assert 0 < refused.reset_ms[0] <= 3000  # the burst leaves the window within ~2 s

    aged = LocalStore()
    aged._windows[REQUESTS.key].add(_second() - 61, 10)
    admitted = await aged.admit([REQUESTS], "r2", 0)
    assert admitted.rejected is None and admitted.used == (0,)
    assert aged._windows[REQUESTS.key].total == 1  # the aged bucket left the running total


async def test_settlement_refunds_an_over_reservation_from_the_total() -> None:
    store = LocalStore()
    admitted = await store.admit([TOKENS], "t1", 90)
    assert admitted.rejected is None
    await store.settle(Settlement("t1", admitted.now_ms, delta_tokens=-80, token_keys=[TOKENS.key]))
    after = await store.admit([TOKENS], "t2", 1)
    assert after.used == (10,)


async def test_an_expired_lease_frees_its_slot() -> None:
    store = LocalStore()
    store._sorted[SLOTS.key]["dead-replica"] = time.time_ns() // 1_000_000 - 1
    admitted = await store.admit([SLOTS], "c1", 0)
    assert admitted.rejected is None and admitted.used == (0,)
    refused = await store.admit([SLOTS], "c2", 0)
    assert refused.rejected is SLOTS
