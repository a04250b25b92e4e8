"""The in-process store: the same checks and arithmetic as the Lua scripts, for one replica.

Serves alone when the config has no ``redis``, and stands in for Redis while it is
unreachable under ``failMode: open`` (then each replica enforces the limits by itself).
"""

from __future__ import annotations

import time
from collections import defaultdict

from .checks import WINDOW_MS, Check, Kind
from .store import Decision, Settlement, decision

_WINDOWS = (Kind.REQUESTS, Kind.TOKENS)
"""Kinds counted in one-second buckets: requests charge 1, tokens the reservation."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class LocalStore:
    def __init__(self) -> None:
        # The Redis data structures, as dicts: sorted sets are id → score, hashes field → int
        # (a window keeps only its buckets: summing 60 of them here is cheap).
        self._sorted: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self._hashes: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._expiry: dict[str, float] = {}

    def _expire(self, key: str, seconds: float) -> None:
        self._expiry[key] = time.monotonic() + seconds

    def _sweep(self, key: str) -> None:
        if (deadline := self._expiry.get(key)) is not None and time.monotonic() >= deadline:
            self._sorted.pop(key, None)
            self._hashes.pop(key, None)
            del self._expiry[key]

    def _used(self, check: Check, now: int) -> tuple[int, int]:
        self._sweep(check.key)
        if check.kind in _WINDOWS:
            seconds = check.window_ms // 1000
            first = now // 1000 - seconds + 1
            buckets = self._hashes[check.key]
            for bucket in [b for b in buckets if int(b) < first]:
                del buckets[bucket]
            charged = [int(b) for b, tokens in buckets.items() if tokens > 0]
            reset = (min(charged) + seconds) * 1000 - now if charged else 0
            return max(0, sum(buckets.values())), reset
        if check.kind is Kind.CONCURRENCY:
            leases = self._sorted[check.key]
            for member in [m for m, end in leases.items() if end <= now]:
                del leases[member]
            return len(leases), 0
        return self._hashes[check.key]["spend_micro"], check.window_ms

    async def admit(
        self, checks: list[Check], id: str, reserved_tokens: int, *, dry: bool = False
    ) -> Decision:
        now = _now_ms()
        pairs: list[int] = []
        rejected = 0
        for index, check in enumerate(checks, 1):
            used, reset = self._used(check, now)
            if not rejected and used >= check.limit:
                rejected = index
            pairs += [used, reset]
        if not rejected and not dry:
            for check in checks:
                amount = 1 if check.kind is Kind.REQUESTS else reserved_tokens
                if check.kind in _WINDOWS and amount > 0:
                    self._hashes[check.key][str(now // 1000)] += amount
                elif check.kind is Kind.CONCURRENCY:
                    self._sorted[check.key][id] = now + check.window_ms
                if check.kind is not Kind.BUDGET:
                    self._expire(check.key, check.window_ms / 1000 + 1)
        return decision(checks, rejected, now, pairs)

    async def settle(self, settlement: Settlement) -> list[int]:
        s = settlement
        now = _now_ms()
        second, admitted_second = now // 1000, s.admitted_ms // 1000
        for key in s.token_keys:
            buckets = self._hashes[key]
            if s.delta_tokens > 0:
                buckets[str(second)] += s.delta_tokens
                self._expire(key, WINDOW_MS / 1000 + 1)
            elif s.delta_tokens < 0 and admitted_second > second - WINDOW_MS // 1000:
                refund = min(buckets.get(str(admitted_second), 0), -s.delta_tokens)
                if refund > 0:
                    buckets[str(admitted_second)] -= refund
        for key in s.slot_keys:
            self._sorted[key].pop(s.id, None)
        spend = []
        for key, expires_at in s.usage_keys:
            self._sweep(key)
            usage = self._hashes[key]
            usage["spend_micro"] += s.spend_micro
            usage["input_tokens"] += s.input_tokens
            usage["output_tokens"] += s.output_tokens
            usage["cached_input_tokens"] += s.cached_input_tokens
            usage["requests"] += 1
            self._expire(key, expires_at - time.time())
            spend.append(usage["spend_micro"])
        return spend

    async def read_usage(self, keys: list[str]) -> list[dict[str, int]]:
        for key in keys:
            self._sweep(key)
        return [dict(self._hashes.get(key, {})) for key in keys]
