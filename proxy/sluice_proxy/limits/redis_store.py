"""The shared store: one Lua script per admission and one per settlement, each one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis

from .batch import Evalsha, ScriptPipeline
from .checks import WINDOW_MS, Check
from .store import Decision, Settlement, decision

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


class RedisStore:
    """Scripts run by SHA (EVALSHA, reloaded after NOSCRIPT), pipelined per event-loop tick.

    Each tenant and route's commands are packed once (per second for admissions, whose budget
    check names the period's remaining time): only the request's own arguments are encoded
    per call. The plan's lists stay the same objects while their content does.
    """

    def __init__(self, redis: Redis, url: str, timeout: float) -> None:
        self.redis = redis
        self._scripts = ScriptPipeline(redis, url, timeout)
        self._admit = self._scripts.load(_LUA.joinpath("admit.lua").read_text())
        self._settle = self._scripts.load(_LUA.joinpath("settle.lua").read_text())
        self._templates = _Templates()

    def _admission(self, checks: list[Check]) -> Evalsha:
        wire = [value for check in checks for value in check.wire]
        return Evalsha(self._admit, [c.key for c in checks], variable=2, after=wire)

    def _settlement(
        self, token_keys: list[str], slot_keys: list[str], usage_keys: list[tuple[str, int]]
    ) -> Evalsha:
        keys = [*token_keys, *slot_keys, *(key for key, _ in usage_keys)]
        before = [len(token_keys), len(slot_keys), WINDOW_MS, *(at for _, at in usage_keys)]
        return Evalsha(self._settle, keys, before=before, variable=7)

    async def admit(
        self, checks: list[Check], id: str, reserved_tokens: int, *, dry: bool = False
    ) -> Decision:
        evalsha = self._templates.get(self._admission, checks)
        reply = await self._scripts(evalsha, id, -1 if dry else reserved_tokens)
        return decision(checks, reply[0], reply[1], reply[2:])

    async def settle(self, settlement: Settlement) -> list[int]:
        return [int(v) for v in await self.settle_nowait(settlement)]

    def settle_nowait(self, settlement: Settlement) -> asyncio.Future[Any]:
        """The settlement script's reply (new spend per usage hash) as a future; no task needed."""
        s = settlement
        evalsha = self._templates.get(self._settlement, s.token_keys, s.slot_keys, s.usage_keys)
        return self._scripts(
            evalsha,
            s.id,
            s.admitted_ms,
            s.delta_tokens,
            s.spend_micro,
            s.input_tokens,
            s.output_tokens,
            s.cached_input_tokens,
        )

    def close(self) -> None:
        self._scripts.close()

    async def read_usage(self, keys: list[str]) -> list[dict[str, int]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, _USAGE_FIELDS)
            replies = await pipe.execute()
        return [{f: int(v or 0) for f, v in zip(_USAGE_FIELDS, reply, strict=True)} for reply in replies]
