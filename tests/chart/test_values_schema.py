"""values.schema.json turns bad values into an install-time error that names the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import Helm

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("replicas-not-a-number", {"gateway": {"replicas": "three"}}, "/gateway/replicas"),
    ("typo-in-a-key", {"gateway": {"replica": 3}}, "'replica' not allowed"),
    ("unknown-section", {"gatway": {"enabled": False}}, "'gatway' not allowed"),
    ("failure-policy", {"webhook": {"failurePolicy": "Retry"}}, "/webhook/failurePolicy"),
    ("webhook-timeout", {"webhook": {"timeoutSeconds": 60}}, "/webhook/timeoutSeconds"),
    ("redis-url-scheme", {"redis": {"external": {"url": "http://redis:6379"}}}, "/redis/external/url"),
    ("quota-leases-not-a-boolean", {"redis": {"quotaLeases": "no"}}, "/redis/quotaLeases"),
    ("zero-operators", {"operator": {"replicas": 0}}, "/operator/replicas"),
    ("workers", {"gateway": {"workers": 0}}, "/gateway/workers"),
    ("service-type", {"gateway": {"service": {"type": "Ingress"}}}, "/gateway/service/type"),
    ("namespace-name", {"operator": {"watchNamespaces": ["Team_A"]}}, "/operator/watchNamespaces/0"),
    ("root-allowed", {"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    (
        "issuer-kind",
        {"webhook": {"certManager": {"issuerRef": {"name": "x", "kind": "Vault"}}}},
        "/webhook/certManager/issuerRef/kind",
    ),
    ("health-port-clash", {"operator": {"healthPort": 9443}}, "/operator/healthPort"),
    ("spread", {"gateway": {"topologySpread": [{"topologyKey": "zone"}]}}, "/gateway/topologySpread/0"),
]


@pytest.mark.parametrize(
    ("values", "field"), [(v, f) for _, v, f in BAD_VALUES], ids=[n for n, _, _ in BAD_VALUES]
)
def test_bad_values_fail_naming_the_field(helm: Helm, values: dict[str, Any], field: str) -> None:
    result = helm.dry_run_install(values)
    assert result.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr, result.stderr


def test_documented_values_are_all_in_the_schema(helm: Helm) -> None:
    """additionalProperties is false everywhere, so the shipped values.yaml must pass as-is."""
    result = helm.dry_run_install()
    assert result.returncode == 0, result.stderr
