"""The shared store: Lua scripts that admit and settle a tick's requests of a tenant and route at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis

from .batch import Evalsha, ScriptPipeline
from .checks import WINDOW_MS, Check, Kind
from .store import Decision, Settlement

_LUA = files(__package__).joinpath("lua")
MAX_PER_CALL = 256
"""Requests one script call decides at most: a script holds Redis while it runs, and Lua's
``unpack`` (ZADD and ZREM of every admitted id) takes a few thousand values at most."""
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


class _Call:
    """The callers that one script call answers."""

    __slots__ = ()

    def waiters(self) -> Iterator[asyncio.Future[Any]]:
        raise NotImplementedError

    def deliver(self, result: Any) -> None:
        """Give each caller its part of the script's result."""
        raise NotImplementedError

    def resolve(self, reply: asyncio.Future[Any]) -> None:
        if reply.cancelled():
            for waiter in self.waiters():
                waiter.cancel()
            return
        error = reply.exception()
        if error is None:
            try:
                self.deliver(reply.result())
                return
            except Exception as malformed:  # not the script's shape: no caller may wait forever
                error = malformed
        for waiter in self.waiters():
            if not waiter.done():
                waiter.set_exception(error)


class _Admissions(_Call):
    """One tick's admissions of one tenant and route: one script call, one decision each."""

    __slots__ = ("checks", "evalsha", "requests")

    def __init__(self, checks: list[Check], evalsha: Evalsha) -> None:
        self.checks = checks
        self.evalsha = evalsha
        self.requests: list[tuple[str, int, asyncio.Future[Decision]]] = []
        """Admission id, tokens to reserve (-1: only report), the caller's future."""

    def values(self) -> list[str | int]:
        """The requests' own script arguments; a caller that gave up already is left out."""
        self.requests = [request for request in self.requests if not request[2].done()]
        return [value for admission_id, reserved, _ in self.requests for value in (admission_id, reserved)]

    def waiters(self) -> Iterator[asyncio.Future[Any]]:
        return (waiter for *_, waiter in self.requests)

    def deliver(self, result: Any) -> None:
        """Each request's decision, as if it had run alone after the ones before it."""
        checks, count = self.checks, len(self.checks)
        now = result[0]
        used, resets = result[1 : 2 * count + 1 : 2], result[2 : 2 * count + 2 : 2]
        last = len(self.requests) - 1
        for position, ((_, reserved, waiter), verdict) in enumerate(
            zip(self.requests, result[2 * count + 1 :], strict=True)
        ):
            if not waiter.done():
                rejected = checks[verdict - 1] if verdict else None
                waiter.set_result(Decision(rejected, verdict - 1, now, tuple(used), tuple(resets)))
            if verdict or reserved < 0 or position == last:  # the last one's charges: nobody after
                continue
            for index, check in enumerate(checks):  # what the next request finds charged
                kind = check.kind
                amount = reserved if kind is Kind.TOKENS else 0 if kind is Kind.BUDGET else 1
                if amount > 0:
                    if used[index] <= 0 and kind is not Kind.CONCURRENCY:
                        # The window was empty: this charge is its oldest now, from this second.
                        resets[index] = (now // 1000) * 1000 + check.window_ms - now
                    used[index] += amount


class _Settlements(_Call):
    """One tick's settlements of one tenant and route: one script call, each its own reply."""

    __slots__ = ("evalsha", "settlements")

    def __init__(self, evalsha: Evalsha) -> None:
        self.evalsha = evalsha
        self.settlements: list[tuple[Settlement, asyncio.Future[list[int]]]] = []

    def values(self) -> list[str | int]:
        return [
            value
            for s, _ in self.settlements
            for value in (
                s.id,
                s.admitted_ms,
                s.delta_tokens,
                s.spend_micro,
                s.input_tokens,
                s.output_tokens,
                s.cached_input_tokens,
            )
        ]

    def waiters(self) -> Iterator[asyncio.Future[Any]]:
        return (waiter for _, waiter in self.settlements)

    def deliver(self, result: Any) -> None:
        """Each settlement's new spends, as if it had run alone after the ones before it."""
        spends = [int(value) for value in result]
        for settlement, waiter in reversed(self.settlements):
            if not waiter.done():
                waiter.set_result(spends)
            spends = [spend - settlement.spend_micro for spend in spends]


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

    def __init__(self, redis: Redis, url: str, timeout: float) -> None:
        self.redis = redis
        self._scripts = ScriptPipeline(redis, url, timeout)
        self._admit = self._scripts.load(_LUA.joinpath("admit.lua").read_text())
        self._settle = self._scripts.load(_LUA.joinpath("settle.lua").read_text())
        self._templates = _Templates()
        self._admissions: dict[int, _Admissions] = {}
        self._settlements: dict[int, _Settlements] = {}

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
            report = _Admissions(checks, evalsha)
            report.requests.append((admission_id, -1, waiter))
            self._scripts(evalsha, *report.values()).add_done_callback(report.resolve)
            return waiter
        group = self._admissions.get(id(evalsha))
        if group is None:
            self._scripts.before_write(self._send_admissions)  # the first of the tick sends them all
            group = self._admissions[id(evalsha)] = _Admissions(checks, evalsha)
        group.requests.append((admission_id, reserved_tokens, waiter))
        if len(group.requests) >= MAX_PER_CALL:  # it goes now, ahead of the tick's later ones
            del self._admissions[id(evalsha)]
            self._scripts(evalsha, *group.values()).add_done_callback(group.resolve)
        return waiter

    def _send_admissions(self) -> None:
        groups, self._admissions = self._admissions, {}
        for group in groups.values():
            if values := group.values():
                self._scripts(group.evalsha, *values).add_done_callback(group.resolve)

    async def settle(self, settlement: Settlement) -> list[int]:
        return await self.settle_nowait(settlement)

    def settle_nowait(self, settlement: Settlement) -> asyncio.Future[list[int]]:
        """The new spend per usage hash as a future; the tick's settlements of a plan share one call."""
        s = settlement
        evalsha = self._templates.get(self._settlement, s.token_keys, s.slot_keys, s.usage_keys)
        group = self._settlements.get(id(evalsha))
        if group is None:
            self._scripts.before_write(self._send_settlements)
            group = self._settlements[id(evalsha)] = _Settlements(evalsha)
        waiter: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        group.settlements.append((settlement, waiter))
        if len(group.settlements) >= MAX_PER_CALL:
            del self._settlements[id(evalsha)]
            self._scripts(evalsha, *group.values()).add_done_callback(group.resolve)
        return waiter

    def _send_settlements(self) -> None:
        groups, self._settlements = self._settlements, {}
        for group in groups.values():
            self._scripts(group.evalsha, *group.values()).add_done_callback(group.resolve)

    def close(self) -> None:
        self._scripts.close()

    async def read_usage(self, keys: list[str]) -> list[dict[str, int]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, _USAGE_FIELDS)
            replies = await pipe.execute()
        return [{f: int(v or 0) for f, v in zip(_USAGE_FIELDS, reply, strict=True)} for reply in replies]
