"""Redis key names and accounting periods: the layout the operator reads too.

Every key carries the same hash tag, ``{<prefix>}``, so the one Lua script that decides a
request (tenant, tenant-and-model and route limits together) always runs in a single
Redis Cluster slot. ``<prefix>`` is ``redis.keyPrefix`` (default ``sluice``); the operator
renders ``sluice:<namespace>``, so on a Cluster each namespace lands on its own slot.
``<tenant>`` is the tenant name exactly as in the config.

==================================================  ============================================
key                                                 holds
==================================================  ============================================
``{sluice}:t:<tenant>:rpm``                         hash: unix second → requests admitted then,
                                                    ``sum`` (of the window), ``tail`` (oldest second)
``{sluice}:t:<tenant>:tpm``                         the same for tokens charged
``{sluice}:t:<tenant>:concurrency``                 sorted set: admission id → lease end (ms)
``{sluice}:t:<tenant>:model:<model>:rpm|tpm|…``     the same, per tenant and route model
``{sluice}:t:<tenant>:usage:day:<YYYY-MM-DD>``      hash: spend_micro, input_tokens,
``{sluice}:t:<tenant>:usage:month:<YYYY-MM>``       output_tokens, cached_input_tokens, requests
``{sluice}:r:<model>:rpm|tpm|concurrency``          route ceilings shared by every tenant
==================================================  ============================================

Spend is integer micro-dollars (``spend_micro``; 1 USD = 1,000,000) in UTC periods; a usage
hash expires :data:`USAGE_RETENTION` after its period ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["day", "month"]
USAGE_PERIODS: tuple[Period, Period] = ("day", "month")
"""The periods a tenant's usage is kept for, in the order settlement replies give their spend."""
MICRO = 1_000_000
USAGE_RETENTION = timedelta(days=35)
SPEND_FIELD = "spend_micro"


def tenant_tag(prefix: str, tenant: str) -> str:
    """Where a tenant's keys start; ``{prefix}`` is the hash tag every key shares."""
    return f"{{{prefix}}}:t:{tenant}"


def route_tag(prefix: str, model: str) -> str:
    return f"{{{prefix}}}:r:{model}"


def period_id(period: Period, now: datetime) -> str:
    return now.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def period_end(period: Period, now: datetime) -> datetime:
    """The first instant (UTC) of the next period."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return start + timedelta(days=1)
    first = start.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


def usage_key(prefix: str, tenant: str, period: Period, now: datetime) -> str:
    return usage_key_in(prefix, tenant, period, period_id(period, now.astimezone(UTC)))


def usage_key_in(prefix: str, tenant: str, period: Period, id: str) -> str:
    """The usage hash of the period named ``id`` (``2026-12-01``, ``2026-12``)."""
    return f"{tenant_tag(prefix, tenant)}:usage:{period}:{id}"


@dataclass(frozen=True, slots=True)
class PeriodInfo:
    id: str
    end_ms: int
    """The next period's first instant, in Unix milliseconds."""
    expires_at: int
    """Unix second a usage hash of this period expires at: the period's end plus USAGE_RETENTION."""


@dataclass(frozen=True, slots=True)
class Periods:
    second: int
    day: PeriodInfo
    month: PeriodInfo

    def __getitem__(self, period: Period) -> PeriodInfo:
        return self.day if period == "day" else self.month


def _periods_at(second: int) -> Periods:
    now = datetime.fromtimestamp(second, UTC)
    retention = int(USAGE_RETENTION.total_seconds())

    def info(period: Period) -> PeriodInfo:
        end = int(period_end(period, now).timestamp())
        return PeriodInfo(period_id(period, now), end * 1000, end + retention)

    return Periods(second, info("day"), info("month"))


_periods: list[Periods] = [_periods_at(int(time.time()))]


def current_periods() -> Periods:
    """The day and month of this UTC second; computed once a second, not once a request."""
    second = int(time.time())
    periods = _periods[0]
    if periods.second != second:
        periods = _periods[0] = _periods_at(second)
    return periods
