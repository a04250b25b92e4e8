"""The shared store: Lua scripts that admit and settle a tick's requests of a tenant and route at once."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from .batch import Evalsha, RedisClient, ScriptCall
from .checks import WINDOW_MS, Check
from .pipe import settle as resolve
from .store import Decision, Settlement

LOG = logging.getLogger("sluice.limits")
_LUA = files(__package__).joinpath("lua")
_USAGE_FIELDS = ("spend_micro", "input_tokens", "output_tokens", "cached_input_tokens", "requests")


class _Templates:
    """Evalsha templates found by the identity of the lists they were packed from.

    An entry holds its lists, so no other live object can take their ids while it is cached.
    """

    MAX = 4096

    def __init__(self) -> None:
        self._entries: dict[tuple[int, ...], tuple[tuple[object, ...], Evalsha]] = {}

    def get(self, make: Callable[..., Evalsha], *sources: Any) -> Evalsha:
        """``make(*sources)``, made once while the same objects come back."""
        key = tuple(map(id, sources))
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.MAX:
                self._entries.clear()
            entry = self._entries[key] = (sources, make(*sources))
        return entry[1]


class _Admissions(ScriptCall):
    """One tick's admissions of one tenant and route: one script call, one decision each.

    Items: admission id, tokens to reserve (-1: only report), the caller's future.
    """

    __slots__ = ("checks",)

    def __init__(self, client: RedisClient, evalsha: Evalsha, checks: list[Check]) -> None:
        super().__init__(client, evalsha)
        self.checks = checks

    def arguments(self) -> list[str | int] | None:
        items = self.items = [item for item in self.items if not item[2].done()]  # some gave up
        return [value for admission_id, reserved, _ in items for value in (admission_id, reserved)] or None

    def deliver(self, result: Any) -> None:
        """Each request's decision, as if it had run alone after the ones before it.

        The script reports what each request found (the charges before it included), so
        nothing is recomputed here.
        """
        checks, count = self.checks, len(self.checks)
        now, width = result[0], 2 * count + 1
        for position, (_, _, waiter) in enumerate(self.items):
            if not waiter.done():
                at = 1 + position * width
                verdict = result[at]
                waiter.set_result(
                    Decision(
                        checks[verdict - 1] if verdict else None,
                        verdict - 1,
                        now,
                        tuple(result[at + 1 : at + 1 + count]),
                        tuple(result[at + 1 + count : at + width]),
                    )
                )

    def fail(self, error: BaseException) -> None:
        for _, _, waiter in self.items:
            if not waiter.done():
                waiter.set_exception(error)


Spends = list[int] | BaseException
"""A settlement's outcome: the new spend per usage hash, or why it failed."""


class _Settlements(ScriptCall):
    """One tick's settlements of one tenant and route: one script call, each its own reply.

    Items: the settlement, what to call with its :data:`Spends`.
    """

    __slots__ = ()

    def arguments(self) -> list[str | int]:
        return [
            f"{s.id} {s.admitted_ms} {s.delta_tokens} {s.spend_micro} "
            f"{s.input_tokens} {s.output_tokens} {s.cached_input_tokens}"
            for s, _ in self.items
        ]

    def deliver(self, result: Any) -> None:
        """Each settlement's new spends, as if it had run alone after the ones before it."""
        items = self.items
        spent = sum(settlement.spend_micro for settlement, _ in items)
        spends = [int(value) - spent for value in result]  # before the first of them
        for settlement, then in items:
            spends = [spend + settlement.spend_micro for spend in spends]
            _tell(then, spends)

    def fail(self, error: BaseException) -> None:
        for _, then in self.items:
            _tell(then, error)


def _tell(then: Callable[[Spends], object], outcome: Spends) -> None:
    # It runs inside the connection's data_received: one that raises must not cut off the rest.
    try:
        then(outcome)
    except Exception:
        LOG.exception("handling a settlement's outcome failed")


class RedisStore:
    """Scripts run by SHA (EVALSHA, reloaded after NOSCRIPT), pipelined per event-loop tick.

    The admissions (and the settlements) of one tenant and route in the same tick go in one
    script call, which decides them in order exactly as separate calls would but reads and
    writes each key once: Redis's work per request falls as the load rises, where one script
    run per request would make Redis the ceiling of every replica together. Each tenant and
    route's commands are packed once (per second for admissions, whose budget check names
    the period's remaining time): only the requests' own arguments are encoded per call. The
    plan's lists stay the same objects while their content does.
    """

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._admit = redis.script(_LUA.joinpath("admit.lua").read_text())
        self._settle = redis.script(_LUA.joinpath("settle.lua").read_text())
        self._templates = _Templates()

    def _admission(self, checks: list[Check]) -> Evalsha:
        wire = [value for check in checks for value in check.wire]
        return Evalsha(self._admit, [c.key for c in checks], before=wire)

    def _settlement(
        self, token_keys: list[str], slot_keys: list[str], usage_keys: list[tuple[str, int]]
    ) -> Evalsha:
        keys = [*token_keys, *slot_keys, *(key for key, _ in usage_keys)]
        before = [len(token_keys), len(slot_keys), WINDOW_MS, *(at for _, at in usage_keys)]
        return Evalsha(self._settle, keys, before=before)

    def admit(
        self, checks: list[Check], admission_id: str, reserved_tokens: int, *, dry: bool = False
    ) -> asyncio.Future[Decision]:
        """The decision as a future; the tick's admissions of the same checks share one call."""
        evalsha = self._templates.get(self._admission, checks)
        waiter: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        if dry:  # a report runs alone: it shows the state before anything this tick charges
            report = _Admissions(self.redis, evalsha, checks)
            report.items.append((admission_id, -1, waiter))
            self.redis.send(report)
        else:
            self.redis.join(evalsha, _Admissions, checks).items.append(
                (admission_id, reserved_tokens, waiter)
            )
        return waiter

    async def settle(self, settlement: Settlement) -> list[int]:
        settled: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self.settle_then(settlement, functools.partial(resolve, settled))
        return await settled

    def settle_then(self, settlement: Settlement, then: Callable[[Spends], object]) -> None:
        """Call ``then`` with the :data:`Spends`; the tick's settlements of a plan share one call."""
        s = settlement
        evalsha = self._templates.get(self._settlement, s.token_keys, s.slot_keys, s.usage_keys)
        self.redis.join(evalsha, _Settlements).items.append((settlement, then))

    async def read_usage(self, keys: list[str]) -> list[dict[str, int]]:
        replies = await asyncio.gather(*(self.redis.command("HMGET", key, *_USAGE_FIELDS) for key in keys))
        return [{f: int(v or 0) for f, v in zip(_USAGE_FIELDS, reply, strict=True)} for reply in replies]
