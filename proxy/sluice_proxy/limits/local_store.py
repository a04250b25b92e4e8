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


class _Window:
    """A sliding window's one-second buckets, oldest first, and their running total."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.total = 0

    def used(self, first: int, seconds: int, now: int) -> tuple[int, int]:
        """Drop the buckets before second ``first``; the amount left and ms until it next drops."""
        buckets = self.buckets
        # Buckets are made in time order, so the stale ones lead (a clock stepping back only
        # keeps a bucket longer than its minute).
        while buckets and (oldest := next(iter(buckets))) < first:
            self.total -= buckets.pop(oldest)
        reset = next(((b + seconds) * 1000 - now for b, amount in buckets.items() if amount > 0), 0)
        return max(0, self.total), reset

    def add(self, second: int, amount: int) -> None:
        self.buckets[second] = self.buckets.get(second, 0) + amount
        self.total += amount


class LocalStore:
    def __init__(self) -> None:
        # Redis's data structures as Python ones: windows, sorted sets (id → score, in score
        # order: leases all last LEASE_MS) and hashes (field → int).
        self._windows: defaultdict[str, _Window] = defaultdict(_Window)
        self._sorted: defaultdict[str, dict[str, int]] = defaultdict(dict)
        self._hashes: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._expiry: dict[str, float] = {}

    def _expire(self, key: str, seconds: float) -> None:
        self._expiry[key] = time.monotonic() + seconds

    def _sweep(self, key: str) -> None:
        if (deadline := self._expiry.get(key)) is not None and time.monotonic() >= deadline:
            self._windows.pop(key, None)
            self._sorted.pop(key, None)
            self._hashes.pop(key, None)
            del self._expiry[key]

    def _used(self, check: Check, now: int) -> tuple[int, int]:
        self._sweep(check.key)
        if check.kind in _WINDOWS:
            seconds = check.window_ms // 1000
            return self._windows[check.key].used(now // 1000 - seconds + 1, seconds, now)
        if check.kind is Kind.CONCURRENCY:
            leases = self._sorted[check.key]
            while leases:
                member, end = next(iter(leases.items()))
                if end > now:
                    break
                del leases[member]
            return len(leases), 0
        return self._hashes[check.key]["spend_micro"], check.window_ms

    async def admit(
        self, checks: list[Check], admission_id: str, reserved_tokens: int, *, dry: bool = False
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
                    self._windows[check.key].add(now // 1000, amount)
                elif check.kind is Kind.CONCURRENCY:
                    self._sorted[check.key][admission_id] = now + check.window_ms
                if check.kind is not Kind.BUDGET:
                    self._expire(check.key, check.window_ms / 1000 + 1)
        return decision(checks, rejected, now, pairs)

    async def settle(self, settlement: Settlement) -> list[int]:
        return self.settle_now(settlement)

    def settle_now(self, settlement: Settlement) -> list[int]:
        """``settle`` without a coroutine: nothing in it waits."""
        s = settlement
        now = _now_ms()
        second, admitted_second = now // 1000, s.admitted_ms // 1000
        for key in s.token_keys:
            window = self._windows[key]
            if s.delta_tokens > 0:
                window.add(second, s.delta_tokens)
                self._expire(key, WINDOW_MS / 1000 + 1)
            elif s.delta_tokens < 0 and admitted_second > second - WINDOW_MS // 1000:
                refund = min(window.buckets.get(admitted_second, 0), -s.delta_tokens)
                if refund > 0:
                    window.add(admitted_second, -refund)
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
