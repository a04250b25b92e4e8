"""spend_status(): a tenant's usage hash → status.spend."""

from __future__ import annotations

from datetime import UTC, datetime

from sluice_operator.reconcile import TenantView
from sluice_operator.spend import changed, spend_status
from sluice_proxy.config import Budget

NOW = datetime(2026, 3, 15, 12, 30, tzinfo=UTC)


def test_budgeted_tenant() -> None:
    usage = {b"spend_micro": b"12500000", b"input_tokens": b"1000", b"output_tokens": b"250"}
    status = spend_status(TenantView("t", Budget(usd=50, period="month"), None), usage, "month", NOW)
    assert status == {
        "usd": 12.5,
        "budgetUSD": 50,
        "usedPercent": 25.0,
        "period": "month",
        "periodStart": "2026-03-01T00:00:00Z",
        "tokens": {"input": 1000, "output": 250},
    }


def test_no_usage_yet_and_no_budget() -> None:
    status = spend_status(TenantView("t", None, None), {}, "day", NOW)
    assert status == {
        "usd": 0.0,
        "period": "day",
        "periodStart": "2026-03-15T00:00:00Z",
        "tokens": {"input": 0, "output": 0},
    }


def test_changed_ignores_updated_at() -> None:
    new = {"usd": 1.0}
    assert changed(None, new)
    assert not changed({"usd": 1.0, "updatedAt": "x"}, new)
    assert changed({"usd": 0.5, "updatedAt": "x"}, new)
