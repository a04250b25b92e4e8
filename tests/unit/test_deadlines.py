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
            await deadlines.wait(never, loop.time() + 0.02)


async def test_a_discarded_or_answered_deadline_never_fires() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, tick=0.01)
    fired: list[str] = []
    later = asyncio.Event()
    deadlines.add("discarded", loop.time() + 0.01, lambda: fired.append("discarded"))
    deadlines.discard("discarded")
    answered: asyncio.Future[str] = loop.create_future()
    answered.set_result("in time")
    assert await deadlines.wait(answered, loop.time() + 0.01) == "in time"
    # A later deadline fires after both earlier ones would have: then neither did.
    deadlines.add("later", loop.time() + 0.05, later.set)
    async with asyncio.timeout(5):
        await later.wait()
    assert fired == []
    deadlines.close()
