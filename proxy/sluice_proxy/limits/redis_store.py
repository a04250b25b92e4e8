"""The shared store: one Lua script per admission and one per settlement, each one round trip."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis

from .batch import ScriptPipeline
from .checks import WINDOW_MS, Check
from .store import Decision, Settlement, decision

_LUA = files(__package__).joinpath("lua")
_USAGE_FIELDS = ("spend_micro", "input_tokens", "output_tokens", "cached_input_tokens", "requests")


class RedisStore:
    """Scripts run by SHA (EVALSHA, reloaded after NOSCRIPT), pipelined per event-loop tick."""

    def __init__(self, redis: Redis, url: str, timeout: float) -> None:
        self.redis = redis
        self._scripts = ScriptPipeline(redis, url, timeout)
        self._admit = self._scripts.load(_LUA.joinpath("admit.lua").read_text())
        self._settle = self._scripts.load(_LUA.joinpath("settle.lua").read_text())

    async def admit(
        self, checks: list[Check], id: str, reserved_tokens: int, *, dry: bool = False
    ) -> Decision:
        args: list[str | int] = [id, -1 if dry else reserved_tokens]
        for check in checks:
            args.extend(check.wire)
        reply = await self._scripts(self._admit, [c.key for c in checks], args)
        return decision(checks, int(reply[0]), int(reply[1]), [int(v) for v in reply[2:]])

    async def settle(self, settlement: Settlement) -> list[int]:
        return [int(v) for v in await self.settle_nowait(settlement)]

    def settle_nowait(self, settlement: Settlement) -> asyncio.Future[Any]:
        """The settlement script's reply (new spend per usage hash) as a future; no task needed."""
        s = settlement
        keys = [*s.token_keys, *s.slot_keys, *(key for key, _ in s.usage_keys)]
        args: list[str | int] = [
            s.id,
            s.admitted_ms,
            len(s.token_keys),
            len(s.slot_keys),
            s.delta_tokens,
            WINDOW_MS,
            *(ttl for _, ttl in s.usage_keys),
            s.spend_micro,
            s.input_tokens,
            s.output_tokens,
            s.cached_input_tokens,
        ]
        return self._scripts(self._settle, keys, args)

    def close(self) -> None:
        self._scripts.close()

    async def read_usage(self, keys: list[str]) -> list[dict[str, int]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, _USAGE_FIELDS)
            replies = await pipe.execute()
        return [{f: int(v or 0) for f, v in zip(_USAGE_FIELDS, reply, strict=True)} for reply in replies]
