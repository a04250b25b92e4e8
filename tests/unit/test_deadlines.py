"""One sweep fires every passed deadline, and only those still pending."""

from __future__ import annotations

import asyncio

import pytest

from sluice_proxy.deadlines import Deadlines


async def test_a_wait_past_its_deadline_times_out() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, tick=0.01)
    never: asyncio.Future[None] = loop.create_future()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5):  # the outer bound only catches a sweep that never fires
            await deadlines.bound(never, loop.time() + 0.02)


async def test_an_answered_wait_is_left_alone_and_later_deadlines_still_fire() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, tick=0.01)
    answered: asyncio.Future[str] = loop.create_future()
    loop.call_soon(answered.set_result, "in time")
    assert await deadlines.bound(answered, loop.time() + 0.01) == "in time"
    # A later deadline fires after the answered one would have: the sweep ran past it.
    never: asyncio.Future[None] = loop.create_future()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5):
            await deadlines.bound(never, loop.time() + 0.05)
    assert answered.result() == "in time"
    deadlines.close()
