"""Which limits apply to one request, as a flat list of checks both stores evaluate alike."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from ..config.schema import Limits
from ..runtime import RuntimeRoute, RuntimeTenant
from .keys import MICRO, USAGE_PERIODS, Periods, current_periods, route_tag, tenant_tag, usage_key_in

if TYPE_CHECKING:
    from .leases import Lease

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
                f"{tag}:{scope}rpm",
                limits.requests_per_minute,
                WINDOW_MS,
                f"{label}requests",
            )
        )
    if limits.tokens_per_minute is not None:
        checks.append(
            Check(Kind.TOKENS, f"{tag}:{scope}tpm", limits.tokens_per_minute, WINDOW_MS, f"{label}tokens")
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


Windows = tuple[tuple[Kind, tuple[tuple[int, int, int, str], ...]], ...]
"""The request and token checks of a list, by kind: each check's index in the list, its limit,
its window (ms) and its limit as header text."""


def windows_of(checks: list[Check]) -> Windows:
    """What ``x-ratelimit-*`` headers report on: requests first, then tokens, where present."""
    groups = []
    for kind in (Kind.REQUESTS, Kind.TOKENS):
        members = tuple(
            (index, check.limit, check.window_ms, str(check.limit))
            for index, check in enumerate(checks)
            if check.kind is kind
        )
        if members:
            groups.append((kind, members))
    return tuple(groups)


class Plan:
    """The checks of one tenant's requests to one route, the keys settling them touches, and
    the quota leased for them (:mod:`.leases`).

    The rate checks never change while both objects belong to the loaded config; the budget
    check and the usage keys name the current period, so they are rebuilt once a second.
    """

    __slots__ = (
        "_after_budget",
        "_before_budget",
        "_checks",
        "_prefix",
        "_second",
        "_usage_keys",
        "_windows",
        "lease",
        "request_keys",
        "route",
        "slot_keys",
        "tenant",
        "token_keys",
        "wants_tokens",
    )

    def __init__(self, prefix: str, tenant: RuntimeTenant, route: RuntimeRoute) -> None:
        self._prefix = prefix
        self.tenant = tenant
        self.route = route
        self._before_budget = _tenant_rate_checks(prefix, tenant, route.model)
        self._after_budget = _rate_checks(route.spec.limits, route_tag(prefix, route.model), "", "route_")
        rate_checks = [*self._before_budget, *self._after_budget]
        self.request_keys = [c.key for c in rate_checks if c.kind is Kind.REQUESTS]
        self.token_keys = [c.key for c in rate_checks if c.kind is Kind.TOKENS]
        self.slot_keys = [c.key for c in rate_checks if c.kind is Kind.CONCURRENCY]
        self.wants_tokens = wants_tokens(tenant, route)
        self._second = -1
        self._checks: list[Check] = []
        self._windows: Windows = ()
        self._usage_keys: list[tuple[str, int]] = []
        self.lease: Lease | None = None

    def _refresh(self) -> None:
        periods = current_periods()
        if periods.second == self._second:
            return
        self._second = periods.second
        budget = _budget(self._prefix, self.tenant, periods, periods.second * 1000)
        self._checks = [*self._before_budget, *([budget] if budget else []), *self._after_budget]
        self._windows = windows_of(self._checks)
        usage_keys = [
            (usage_key_in(self._prefix, self.tenant.name, p, periods[p].id), periods[p].expires_at)
            for p in USAGE_PERIODS
        ]
        if usage_keys != self._usage_keys:  # the same list all day: stores may cache by identity
            self._usage_keys = usage_keys

    def current(self) -> tuple[list[Check], Windows]:
        """Every check of a request now, in order (tenant, tenant+model, budget, route ceiling),
        and :func:`windows_of` them.

        Both are shared by the requests of this second: read them, never change them.
        """
        self._refresh()
        return self._checks, self._windows

    def usage_keys(self) -> list[tuple[str, int]]:
        """The tenant's usage hashes of this day and month (``USAGE_PERIODS``), each with its expiry."""
        self._refresh()
        return self._usage_keys


class Planner:
    """The :class:`Plan` of each (tenant, route) pair, built on its first request.

    A plan is kept while both objects belong to the loaded config; a reload keeps the tenants
    and routes it did not change (``runtime.compile_config``), and with them their plans.
    """

    MAX_PLANS = 100_000

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._plans: dict[tuple[str, str], Plan] = {}

    def plan(self, tenant: RuntimeTenant, route: RuntimeRoute) -> Plan:
        key = (tenant.name, route.model)
        plan = self._plans.get(key)
        if plan is None or plan.tenant is not tenant or plan.route is not route:
            if len(self._plans) >= self.MAX_PLANS:
                self._plans.clear()
            plan = self._plans[key] = Plan(self.prefix, tenant, route)
        return plan
