"""Which limits apply to one request, as a flat list of checks both stores evaluate alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from ..config.schema import Limits
from ..runtime import RuntimeRoute, RuntimeTenant
from .keys import MICRO, period_end, route_tag, tenant_tag, usage_key

WINDOW_MS = 60_000
"""Every rate limit is per minute."""
LEASE_MS = 15 * 60_000
"""A concurrency slot frees itself after this long if its replica died holding it."""


class Kind(StrEnum):
    REQUESTS = "r"
    TOKENS = "t"
    CONCURRENCY = "c"
    BUDGET = "b"


@dataclass(frozen=True, slots=True)
class Check:
    kind: Kind
    key: str
    limit: int
    window_ms: int
    label: str
    """Names the limit in errors and the ``limit`` label of sluice_ratelimit_rejections_total."""

    @property
    def kind_word(self) -> str:
        return self.kind.name.lower()


def _rate_checks(limits: Limits | None, tag: str, scope: str, label: str) -> list[Check]:
    if limits is None:
        return []
    checks = []
    if limits.requests_per_minute is not None:
        checks.append(
            Check(
                Kind.REQUESTS,
                f"{tag}:{scope}requests",
                limits.requests_per_minute,
                WINDOW_MS,
                f"{label}requests",
            )
        )
    if limits.tokens_per_minute is not None:
        checks.append(
            Check(Kind.TOKENS, f"{tag}:{scope}tokens", limits.tokens_per_minute, WINDOW_MS, f"{label}tokens")
        )
    if limits.concurrency is not None:
        checks.append(
            Check(
                Kind.CONCURRENCY,
                f"{tag}:{scope}concurrency",
                limits.concurrency,
                LEASE_MS,
                f"{label}concurrency",
            )
        )
    return checks


def tenant_checks(prefix: str, tenant: RuntimeTenant, model: str | None, now: datetime) -> list[Check]:
    """The tenant's own checks; ``model``: a route model, or None for every model limit."""
    spec = tenant.spec
    tag = tenant_tag(prefix, tenant.name)
    checks = _rate_checks(spec.limits, tag, "", "")
    for model_limits in spec.model_limits:
        if model is None or model_limits.model == model:
            checks += _rate_checks(model_limits, tag, f"model:{model_limits.model}:", "model_")
    if spec.budget is not None:
        period = spec.budget.period
        until_end = int((period_end(period, now) - now).total_seconds() * 1000)
        key = usage_key(prefix, tenant.name, period, now)
        checks.append(Check(Kind.BUDGET, key, round(spec.budget.usd * MICRO), until_end, f"budget_{period}"))
    return checks


def plan(prefix: str, tenant: RuntimeTenant, route: RuntimeRoute, now: datetime | None = None) -> list[Check]:
    """Every check of a request: tenant, tenant+model, budget, then the route ceiling."""
    checks = tenant_checks(prefix, tenant, route.model, now or datetime.now(UTC))
    return checks + _rate_checks(route.spec.limits, route_tag(prefix, route.model), "", "route_")


def wants_tokens(tenant: RuntimeTenant, route: RuntimeRoute) -> bool:
    """True when a token limit applies, so the caller should estimate the request's tokens."""
    scopes: list[Limits | None] = [tenant.spec.limits, route.spec.limits]
    scopes += [m for m in tenant.spec.model_limits if m.model == route.model]
    return any(s is not None and s.tokens_per_minute is not None for s in scopes)
