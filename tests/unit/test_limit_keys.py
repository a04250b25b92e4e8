"""Every key one admission touches shares one hash tag, so the script runs on Redis Cluster."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from sluice_proxy import config
from sluice_proxy.limits.checks import Planner
from sluice_proxy.limits.keys import usage_key
from sluice_proxy.runtime import compile_config

CONFIG = """
providers: [{name: m, type: mock}]
routes: [{model: gpt-4o, backends: [{provider: m, model: x}], limits: {requestsPerMinute: 9, tokensPerMinute: 9}}]
tenants:
  - name: team-a
    keys: [{value: sk-12345678}]
    limits: {requestsPerMinute: 5, tokensPerMinute: 5, concurrency: 2}
    modelLimits: [{model: gpt-4o, requestsPerMinute: 3}]
    budget: {usd: 1}
"""


def test_tenant_model_route_and_usage_keys_share_one_slot() -> None:
    runtime = compile_config(config.loads(CONFIG))
    tenant = next(iter(runtime.tenants_by_key_hash.values()))
    checks = Planner("sluice:ns-1").plan(tenant, runtime.routes["gpt-4o"]).current()[0]
    keys = [c.key for c in checks] + [usage_key("sluice:ns-1", "team-a", "month", datetime.now(UTC))]
    assert len(checks) >= 7  # tenant r/t/c, tenant-model r, route r/t, budget
    tags = {re.match(r"^\{([^}]*)\}", key).group(1) for key in keys}  # type: ignore[union-attr]
    assert tags == {"sluice:ns-1"}


def test_a_reloaded_tenant_gets_its_new_limits() -> None:
    """Plans are cached per (tenant, route), but never outlive the config objects they came from."""
    planner = Planner("sluice")
    before = compile_config(config.loads(CONFIG))
    tenant = next(iter(before.tenants_by_key_hash.values()))
    assert planner.plan(tenant, before.routes["gpt-4o"]).current()[0][0].limit == 5
    after = compile_config(config.loads(CONFIG.replace("requestsPerMinute: 5", "requestsPerMinute: 50")))
    reloaded = next(iter(after.tenants_by_key_hash.values()))
    assert planner.plan(reloaded, after.routes["gpt-4o"]).current()[0][0].limit == 50
    budget = [
        c for c in planner.plan(reloaded, after.routes["gpt-4o"]).current()[0] if c.kind.name == "BUDGET"
    ]
    assert budget[0].key == usage_key("sluice", "team-a", "month", datetime.now(UTC))
    assert 0 < budget[0].window_ms <= 31 * 86_400_000


def test_settling_touches_the_plans_token_slot_and_usage_keys() -> None:
    runtime = compile_config(config.loads(CONFIG))
    tenant = next(iter(runtime.tenants_by_key_hash.values()))
    plan = Planner("sluice").plan(tenant, runtime.routes["gpt-4o"])
    checks = plan.current()[0]
    assert plan.token_keys == [c.key for c in checks if c.kind.name == "TOKENS"] and plan.token_keys
    assert plan.slot_keys == [c.key for c in checks if c.kind.name == "CONCURRENCY"] and plan.slot_keys
    now = datetime.now(UTC)
    assert [key for key, _ in plan.usage_keys()] == [
        usage_key("sluice", "team-a", period, now) for period in ("day", "month")
    ]
    assert all(at > time.time() + 35 * 86_400 for _, at in plan.usage_keys()), (
        "kept past the period for reports"
    )


def test_durations_read_as_go_prints_them() -> None:
    from sluice_proxy.limits.headers import go_duration

    cases = {0: "0s", 12: "12ms", 1000: "1s", 1500: "1.5s", 1234: "1.234s", 59_990: "59.99s"}
    cases |= {
        60_000: "1m0s",
        360_000: "6m0s",
        61_050: "1m1.05s",
        3_723_004: "1h2m3.004s",
        3_600_000: "1h0m0s",
    }
    assert {ms: go_duration(ms) for ms in cases} == cases


def test_rate_headers_report_the_tightest_limit_of_each_kind() -> None:
    from sluice_proxy.limits.checks import LEASE_MS, WINDOW_MS, Check, Kind, windows_of
    from sluice_proxy.limits.headers import rate_headers
    from sluice_proxy.limits.store import decision

    checks = [
        Check(Kind.REQUESTS, "t-rpm", 100, WINDOW_MS, "requests"),
        Check(Kind.TOKENS, "t-tpm", 1000, WINDOW_MS, "tokens"),
        Check(Kind.CONCURRENCY, "t-c", 5, LEASE_MS, "concurrency"),
        Check(Kind.REQUESTS, "r-rpm", 50, WINDOW_MS, "route_requests"),
        Check(Kind.TOKENS, "r-tpm", 10_000, WINDOW_MS, "route_tokens"),
    ]
    # used, reset_ms per check: the route's 50 rpm is tighter than the tenant's 100 (40 vs 10 used);
    # the tenant's tokens are over-reserved (990 used + 20 reserved), reported as 0 left, not -10.
    admitted = decision(checks, 0, 0, [10, 5000, 990, 7000, 1, 0, 40, 0, 10, 3000])
    assert rate_headers(windows_of(checks), admitted, 20) == {
        "x-ratelimit-limit-requests": "50",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "1m0s",  # nothing older in the window: this request's own minute
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "7s",
    }
    assert windows_of([checks[2]]) == ()
