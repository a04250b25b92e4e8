"""Work queued during a turn runs once the turn is over, in order, and one failure loses nothing else."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sluice_proxy.turns import AfterTurn


async def test_items_wait_for_the_end_of_the_turn_and_keep_their_order() -> None:
    handled: list[int] = []
    queue = AfterTurn(handled.append, "handling")
    queue.add(1)
    queue.add(2)
    assert handled == []  # still this turn: nothing handled yet
    await asyncio.sleep(0)  # one turn
    assert handled == [1, 2]
    queue.add(3)
    queue.drain()  # close-time drain: at once
    assert handled == [1, 2, 3]


async def test_a_failing_item_is_logged_and_the_others_are_still_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[int] = []

    def handle(item: int) -> None:
        if item == 2:
            raise ValueError("broken")
        handled.append(item)

    queue = AfterTurn(handle, "handling an item")
    for item in (1, 2, 3):
        queue.add(item)
    with caplog.at_level(logging.ERROR, logger="sluice"):
        queue.drain()
    assert handled == [1, 3]
    assert "handling an item failed" in caplog.text


def test_without_an_event_loop_an_item_is_handled_at_once() -> None:
    handled: list[str] = []
    AfterTurn(handled.append, "handling").add("now")
    assert handled == ["now"]
