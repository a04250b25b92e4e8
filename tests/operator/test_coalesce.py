"""Coalescer: bursts fold into one run; pokes during a run cause exactly one more; failures retry."""

from __future__ import annotations

import asyncio

from sluice_operator.coalesce import Coalescer


async def test_a_burst_of_pokes_is_one_run() -> None:
    runs: list[str] = []
    done = asyncio.Event()

    async def work(key: str) -> None:
        runs.append(key)
        done.set()

    c = Coalescer(work, delay=0.01)
    for _ in range(50):
        c.poke("ns")
    await asyncio.wait_for(done.wait(), 5)
    await c.close()
    assert runs == ["ns"]


async def test_pokes_during_a_run_cause_exactly_one_more_run() -> None:
    runs = 0
    release = asyncio.Event()
    started = asyncio.Event()
    second = asyncio.Event()

    async def work(key: str) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            started.set()
            await release.wait()
        else:
            second.set()

    c = Coalescer(work, delay=0)
    c.poke("ns")
    await asyncio.wait_for(started.wait(), 5)
    for _ in range(10):
        c.poke("ns")
    release.set()
    await asyncio.wait_for(second.wait(), 5)
    await c.close()
    assert runs == 2


async def test_a_failed_run_is_retried() -> None:
    attempts = 0
    succeeded = asyncio.Event()

    async def work(key: str) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("API server unavailable")
        succeeded.set()

    c = Coalescer(work, delay=0, retry=0.01)
    c.poke("ns")
    await asyncio.wait_for(succeeded.wait(), 5)
    await c.close()
    assert attempts == 2
