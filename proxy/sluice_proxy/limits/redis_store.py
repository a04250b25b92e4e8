"""The shared store: one Lua script per admission and one per settlement, each one round trip."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis

from .batch import Evalsha, ScriptPipeline
from .checks import WINDOW_MS, Check
from .store import Decision, Settlement, decision

_LUA = files(__package__).joinpath("lua")
_USAGE_FIELDS = ("spend_micro", "input_tokens", "output_tokens", "cached_input_tokens", "requests")


class RedisStore:
    """Scripts run by SHA (EVALSHA, reloaded after NOSCRIPT), pipelined per event-loop tick.

    Each tenant and route's commands are packed once (per second for admissions, whose budget
    check names the period's remaining time): only the request's own arguments are encoded
    per call. The templates are found by the identity of the plan's lists, which stay the
    same objects while their content does.
    """

    MAX_TEMPLATES = 4096

    def __init__(self, redis: Redis, url: str, timeout: float) -> None:
        self.redis = redis
        self._scripts = ScriptPipeline(redis, url, timeout)
        self._admit = self._scripts.load(_LUA.joinpath("admit.lua").read_text())
        self._settle = self._scripts.load(_LUA.joinpath("settle.lua").read_text())
        self._admissions: dict[int, tuple[list[Check], Evalsha]] = {}
        self._settlements: dict[int, tuple[list[str], list[str], list[tuple[str, int]], Evalsha]] = {}

    def _admission(self, checks: list[Check]) -> Evalsha:
        cached = self._admissions.get(id(checks))
        if cached is not None and cached[0] is checks:
            return cached[1]
        if len(self._admissions) >= self.MAX_TEMPLATES:
            self._admissions.clear()
        wire = [value for check in checks for value in check.wire]
        evalsha = Evalsha(self._admit, [c.key for c in checks], variable=2, after=wire)
        self._admissions[id(checks)] = (checks, evalsha)
        return evalsha

    def _settlement(self, s: Settlement) -> Evalsha:
        cached = self._settlements.get(id(s.usage_keys))
        if (
            cached is not None
            and cached[0] is s.token_keys
            and cached[1] is s.slot_keys
            and cached[2] is s.usage_keys
        ):
            return cached[3]
        if len(self._settlements) >= self.MAX_TEMPLATES:
            self._settlements.clear()
        keys = [*s.token_keys, *s.slot_keys, *(key for key, _ in s.usage_keys)]
        before = [len(s.token_keys), len(s.slot_keys), WINDOW_MS, *(at for _, at in s.usage_keys)]
        evalsha = Evalsha(self._settle, keys, before=before, variable=7)
        self._settlements[id(s.usage_keys)] = (s.token_keys, s.slot_keys, s.usage_keys, evalsha)
        return evalsha

    async def admit(
        self, checks: list[Check], id: str, reserved_tokens: int, *, dry: bool = False
    ) -> Decision:
        reply = await self._scripts(self._admission(checks), id, -1 if dry else reserved_tokens)
        return decision(checks, reply[0], reply[1], reply[2:])

    async def settle(self, settlement: Settlement) -> list[int]:
        return [int(v) for v in await self.settle_nowait(settlement)]

    def settle_nowait(self, settlement: Settlement) -> asyncio.Future[Any]:
        """The settlement script's reply (new spend per usage hash) as a future; no task needed."""
        s = settlement
        return self._scripts(
            self._settlement(s),
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
