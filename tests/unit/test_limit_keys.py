"""Every key one admission touches shares one hash tag, so the script runs on Redis Cluster."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sluice_proxy import config
from sluice_proxy.limits.checks import plan
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
    checks = plan("sluice:ns-1", tenant, runtime.routes["gpt-4o"])
    keys = [c.key for c in checks] + [usage_key("sluice:ns-1", "team-a", "month", datetime.now(UTC))]
    assert len(checks) >= 7  # tenant r/t/c, tenant-model r, route r/t, budget
    tags = {re.match(r"^\{([^}]*)\}", key).group(1) for key in keys}  # type: ignore[union-attr]
    assert tags == {"sluice:ns-1"}
