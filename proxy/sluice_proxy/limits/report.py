"""The body of GET /v1/usage, from a tenant's usage hashes and a dry-run decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..runtime import RuntimeTenant
from .checks import Check, Kind
from .headers import go_duration
from .keys import MICRO, Period, period_end, period_id
from .store import Decision


def _period(period: Period, now: datetime, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "period": period_id(period, now),
        "spend_usd": usage.get("spend_micro", 0) / MICRO,
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "cached_input_tokens": usage.get("cached_input_tokens", 0),
        "requests": usage.get("requests", 0),
    }


def usage_report(
    tenant: RuntimeTenant,
    now: datetime,
    checks: list[Check],
    decision: Decision,
    usage: dict[Period, dict[str, int]],
    degraded: bool,
) -> dict[str, Any]:
    budget = tenant.spec.budget
    budget_report = None
    if budget is not None:
        spent = usage[budget.period].get("spend_micro", 0) / MICRO
        budget_report = {
            "usd": budget.usd,
            "period": budget.period,
            "spent_usd": spent,
            "remaining_usd": max(0.0, budget.usd - spent),
            "resets_at": period_end(budget.period, now).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    limits = [
        {
            "limit": check.label,
            "max": check.limit,
            "used": used,
            "remaining": max(0, check.limit - used),
            "reset": go_duration(reset),
        }
        for check, used, reset in zip(checks, decision.used, decision.reset_ms, strict=True)
        if check.kind is not Kind.BUDGET
    ]
    return {
        "object": "usage",
        "tenant": tenant.name,
        "day": _period("day", now, usage["day"]),
        "month": _period("month", now, usage["month"]),
        "budget": budget_report,
        "limits": limits,
        "limiter_degraded": degraded,
    }
