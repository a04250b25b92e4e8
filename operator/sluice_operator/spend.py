"""Report each AITenant's spend from Redis into ``status.spend``, patching only on change.

Reads the proxy's usage hashes (:func:`sluice_proxy.limits.keys.usage_key`) with the
per-namespace key prefix the renderer writes into each config (``sluice:<namespace>``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from sluice_proxy.limits.keys import MICRO, SPEND_FIELD, Period, usage_key

from .api import GROUP, TENANTS, VERSION
from .kube import ApiError, Kube, group_path
from .reconcile import Reconciler, TenantView

LOG = logging.getLogger("sluice_operator")


def period_start(period: Period, now: datetime) -> datetime:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start if period == "day" else start.replace(day=1)


def spend_status(
    tenant: TenantView, usage: dict[bytes, bytes], period: Period, now: datetime
) -> dict[str, Any]:
    """PURE: the ``status.spend`` of one tenant from its usage hash."""
    usd = int(usage.get(SPEND_FIELD.encode(), 0)) / MICRO
    status: dict[str, Any] = {
        "usd": round(usd, 6),
        "period": period,
        "periodStart": period_start(period, now).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tokens": {
            "input": int(usage.get(b"input_tokens", 0)),
            "output": int(usage.get(b"output_tokens", 0)),
        },
    }
    if tenant.budget is not None:
        status["budgetUSD"] = tenant.budget.usd
        status["usedPercent"] = round(100 * usd / tenant.budget.usd, 2) if tenant.budget.usd else 100.0
    return status


def changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Whether ``new`` says something ``old`` did not (``updatedAt`` aside)."""
    return old is None or {k: v for k, v in old.items() if k != "updatedAt"} != new


async def report_namespace(
    kube: Kube, redis: Redis, namespace: str, tenants: list[TenantView]
) -> list[TenantView]:
    """Patch the tenants whose spend moved; returns the tenants with the spend they now show."""
    now = datetime.now(UTC)
    periods: list[Period] = [t.budget.period if t.budget else "month" for t in tenants]
    async with redis.pipeline(transaction=False) as pipe:
        for tenant, period in zip(tenants, periods, strict=True):
            pipe.hgetall(usage_key(f"sluice:{namespace}", tenant.name, period, now))
        usages: list[dict[bytes, bytes]] = await pipe.execute()
    reported: list[TenantView] = []
    for tenant, period, usage in zip(tenants, periods, usages, strict=True):
        status = spend_status(tenant, usage, period, now)
        if not changed(tenant.spend, status):
            reported.append(tenant)
            continue
        spend = {**status, "updatedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        body = {"status": {"spend": spend}}
        try:
            await kube.merge_patch(
                group_path(GROUP, VERSION, namespace, TENANTS, tenant.name) + "/status", body
            )
        except ApiError as exc:
            if exc.status != 404:  # deleted meanwhile
                raise
        reported.append(TenantView(tenant.name, tenant.budget, spend))
    return reported


async def run(kube: Kube, reconciler: Reconciler, redis_url: str, interval: float) -> None:
    """Forever: every ``interval`` seconds, report the tenants of every rendered namespace."""
    redis = Redis.from_url(redis_url, socket_timeout=5)
    try:
        while True:
            for namespace, view in list(reconciler.views.items()):
                try:
                    reported = await report_namespace(kube, redis, namespace, view.tenants)
                except (RedisError, ApiError, OSError) as exc:
                    LOG.warning("spend report of namespace %s failed: %s", namespace, exc)
                    continue
                if reconciler.views.get(namespace) is view:  # not re-rendered meanwhile
                    view.tenants = reported
            await asyncio.sleep(interval)
    finally:
        await redis.aclose()
