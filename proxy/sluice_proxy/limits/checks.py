"""Which limits apply to one request, as a flat list of checks both stores evaluate alike."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from enum import StrEnum

from ..config.schema import Limits
from ..runtime import RuntimeRoute, RuntimeTenant
from .keys import MICRO, Periods, current_periods, route_tag, tenant_tag, usage_key_in

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
    wire: tuple[str, int, int] = dataclasses.field(init=False, repr=False, compare=False)
    """``kind, limit, window_ms``: the check's arguments to the admission script, built once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire", (self.kind.value, self.limit, self.window_ms))

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


def _budget(prefix: str, tenant: RuntimeTenant, periods: Periods, now_ms: int) -> Check | None:
    budget = tenant.spec.budget
    if budget is None:
        return None
    period = periods[budget.period]
    key = usage_key_in(prefix, tenant.name, budget.period, period.id)
    return Check(
        Kind.BUDGET, key, round(budget.usd * MICRO), period.end_ms - now_ms, f"budget_{budget.period}"
    )


def _tenant_rate_checks(prefix: str, tenant: RuntimeTenant, model: str | None) -> list[Check]:
    spec = tenant.spec
    tag = tenant_tag(prefix, tenant.name)
    checks = _rate_checks(spec.limits, tag, "", "")
    for model_limits in spec.model_limits:
        if model is None or model_limits.model == model:
            checks += _rate_checks(model_limits, tag, f"model:{model_limits.model}:", "model_")
    return checks


def tenant_checks(
    prefix: str, tenant: RuntimeTenant, model: str | None, periods: Periods, now_ms: int
) -> list[Check]:
    """The tenant's own checks; ``model``: a route model, or None for every model limit."""
    checks = _tenant_rate_checks(prefix, tenant, model)
    budget = _budget(prefix, tenant, periods, now_ms)
    return checks if budget is None else [*checks, budget]


def wants_tokens(tenant: RuntimeTenant, route: RuntimeRoute) -> bool:
    """True when a token limit applies, so the caller should estimate the request's tokens."""
    scopes: list[Limits | None] = [tenant.spec.limits, route.spec.limits]
    scopes += [m for m in tenant.spec.model_limits if m.model == route.model]
    return any(s is not None and s.tokens_per_minute is not None for s in scopes)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What does not change between two requests of one tenant to one route."""

    tenant: RuntimeTenant
    route: RuntimeRoute
    before_budget: list[Check]
    after_budget: list[Check]
    wants_tokens: bool


class Planner:
    """Every check of a request: tenant, tenant+model, budget, then the route ceiling.

    The rate checks of a (tenant, route) pair are built on its first request and kept while
    both objects belong to the loaded config (a reload makes new ones); only the budget check,
    which names the current period, is made per request.
    """

    MAX_PLANS = 100_000

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._plans: dict[tuple[str, str], _Plan] = {}

    def _plan(self, tenant: RuntimeTenant, route: RuntimeRoute) -> _Plan:
        key = (tenant.name, route.model)
        plan = self._plans.get(key)
        if plan is None or plan.tenant is not tenant or plan.route is not route:
            if len(self._plans) >= self.MAX_PLANS:
                self._plans.clear()
            route_checks = _rate_checks(route.spec.limits, route_tag(self.prefix, route.model), "", "route_")
            before = _tenant_rate_checks(self.prefix, tenant, route.model)
            plan = self._plans[key] = _Plan(tenant, route, before, route_checks, wants_tokens(tenant, route))
        return plan

    def checks(self, tenant: RuntimeTenant, route: RuntimeRoute) -> list[Check]:
        plan = self._plan(tenant, route)
        budget = _budget(self.prefix, tenant, current_periods(), int(time.time() * 1000))
        if budget is None:
            return [*plan.before_budget, *plan.after_budget]
        return [*plan.before_budget, budget, *plan.after_budget]

    def wants_tokens(self, tenant: RuntimeTenant, route: RuntimeRoute) -> bool:
        return self._plan(tenant, route).wants_tokens
