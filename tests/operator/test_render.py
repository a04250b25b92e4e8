"""render(): a namespace's resources and Secret data → config + one verdict per resource."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sluice_operator.api import PROVIDERS, ROUTES, TENANTS
from sluice_operator.bundle import config_text
from sluice_operator.render import Resource, Snapshot, render
from sluice_proxy.config import SecretRef, loads


def provider(name: str = "openai", **spec: Any) -> Resource:
    return Resource(plural=PROVIDERS, name=name, spec={"type": "openai", **spec})


def route(name: str, model: str, *providers: str, created: str = "") -> Resource:
    backends = [{"provider": p, "model": f"{p}-{model}"} for p in providers]
    return Resource(plural=ROUTES, name=name, spec={"model": model, "backends": backends}, created=created)


def tenant(name: str, secret: str, key: str | None = None, **spec: Any) -> Resource:
    ref = {"name": secret} | ({"key": key} if key else {})
    return Resource(plural=TENANTS, name=name, spec={"keySecretRef": ref, **spec})


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def snapshot(*resources: Resource, secrets: dict[str, dict[str, bytes]] | None = None) -> Snapshot:
    return Snapshot(namespace="team-a", resources=list(resources), secrets=secrets or {})


KEYS = {"team-a-keys": {"k1": b"sk-team-a-0001\n"}, "openai-key": {"apiKey": b"sk-upstream"}}


def test_renders_all_three_kinds_and_accepts_them() -> None:
    out = render(
        snapshot(
            provider(apiKeySecretRef={"name": "openai-key", "key": "apiKey"}),
            route("gpt", "gpt-4o", "openai"),
            tenant("team-a", "team-a-keys"),
            secrets=KEYS,
        )
    )
    assert [p.name for p in out.config.providers] == ["openai"]
    assert out.config.providers[0].api_key == SecretRef(file="/etc/sluice/credentials/openai")
    assert out.credentials == {"openai": b"sk-upstream"}
    assert [r.model for r in out.config.routes] == ["gpt-4o"]
    assert out.config.tenants[0].name == "team-a"
    assert all(v.ready and v.reason == "Accepted" for v in out.verdicts.values())
    assert len(out.verdicts) == 3


def test_tenant_keys_are_only_sha256_digests_and_the_proxy_accepts_the_text() -> None:
    out = render(
        snapshot(provider(), route("gpt", "gpt-4o", "openai"), tenant("team-a", "team-a-keys"), secrets=KEYS)
    )
    [key] = out.config.tenants[0].keys
    assert key.sha256 == sha("sk-team-a-0001") and key.value is None
    text = config_text(out.config)
    assert b"sk-team-a-0001" not in text
    assert loads(text) == out.config


def test_every_data_key_of_the_secret_is_a_valid_key_when_no_key_is_named() -> None:
    secrets = {"keys": {"old": b"sk-old-000001", "new": b"sk-new-000001", "blank": b"  "}}
    out = render(snapshot(tenant("t", "keys"), secrets=secrets))
    assert sorted(k.sha256 for k in out.config.tenants[0].keys) == sorted(
        [sha("sk-old-000001"), sha("sk-new-000001")]
    )


def test_a_named_key_selects_only_that_entry() -> None:
    secrets = {"keys": {"old": b"sk-old-000001", "new": b"sk-new-000001"}}
    out = render(snapshot(tenant("t", "keys", key="new"), secrets=secrets))
    assert [k.sha256 for k in out.config.tenants[0].keys] == [sha("sk-new-000001")]


def test_route_naming_a_missing_provider_is_left_out_and_the_rest_serves() -> None:
    out = render(
        snapshot(
            provider(),
            route("good", "gpt-4o", "openai"),
            route("bad", "claude", "anthropic"),
            tenant("t", "k"),
            secrets={"k": {"key": b"sk-tenant-0001"}},
        )
    )
    assert [r.model for r in out.config.routes] == ["gpt-4o"]
    bad = out.verdicts[(ROUTES, "bad")]
    assert (bad.ready, bad.reason) == (False, "ProviderNotFound")
    assert "'anthropic'" in bad.message
    assert out.verdicts[(ROUTES, "good")].ready and out.verdicts[(TENANTS, "t")].ready


def test_provider_with_missing_secret_takes_its_routes_down_with_a_reason() -> None:
    out = render(
        snapshot(provider(apiKeySecretRef={"name": "nope", "key": "apiKey"}), route("r", "m", "openai"))
    )
    assert out.verdicts[(PROVIDERS, "openai")].reason == "SecretNotFound"
    assert out.config.providers == []
    verdict = out.verdicts[(ROUTES, "r")]
    assert verdict.reason == "ProviderNotFound" and "SecretNotFound" in verdict.message
    assert "nope" in out.referenced_secrets


def test_provider_secret_without_the_named_key_is_key_missing() -> None:
    out = render(snapshot(provider(apiKeySecretRef={"name": "openai-key", "key": "token"}), secrets=KEYS))
    verdict = out.verdicts[(PROVIDERS, "openai")]
    assert verdict.reason == "KeyMissing" and "'token'" in verdict.message and "apiKey" in verdict.message


def test_invalid_spec_names_the_field() -> None:
    bad = Resource(
        plural=ROUTES,
        name="r",
        spec={"model": "m", "backends": [{"provider": "openai", "model": "x", "weight": -1}]},
    )
    out = render(snapshot(provider(), bad))
    verdict = out.verdicts[(ROUTES, "r")]
    assert verdict.reason == "Invalid" and "spec.backends[0].weight" in verdict.message


def test_cross_field_problem_of_a_provider_is_reported_under_spec() -> None:
    out = render(snapshot(Resource(plural=PROVIDERS, name="az", spec={"type": "azure-openai"})))
    verdict = out.verdicts[(PROVIDERS, "az")]
    assert verdict.reason == "Invalid" and "spec.baseURL" in verdict.message


def test_two_routes_for_one_model_the_older_wins() -> None:
    out = render(
        snapshot(
            provider(),
            route("new", "m", "openai", created="2026-02-01T00:00:00Z"),
            route("old", "m", "openai", created="2026-01-01T00:00:00Z"),
        )
    )
    assert out.verdicts[(ROUTES, "old")].ready
    assert out.verdicts[(ROUTES, "new")].reason == "Invalid"
    assert "AIRoute 'old'" in out.verdicts[(ROUTES, "new")].message
    assert len(out.config.routes) == 1


def test_missing_tenant_secret_is_reported_for_generation() -> None:
    out = render(snapshot(tenant("t", "t-keys", key="token")))
    assert out.verdicts[(TENANTS, "t")].reason == "SecretNotFound"
    [missing] = out.missing_key_secrets
    assert (missing.tenant, missing.secret, missing.key) == ("t", "t-keys", "token")
    assert out.config.tenants == []


def test_tenant_secret_with_only_blank_values_is_key_missing() -> None:
    out = render(snapshot(tenant("t", "k"), secrets={"k": {"a": b"\n"}}))
    assert out.verdicts[(TENANTS, "t")].reason == "KeyMissing"


def test_a_key_shared_by_two_tenants_stays_with_the_first() -> None:
    secrets = {"a": {"k": b"sk-shared-0001"}, "b": {"k": b"sk-shared-0001"}}
    out = render(snapshot(tenant("a", "a"), tenant("b", "b"), secrets=secrets))
    assert [t.name for t in out.config.tenants] == ["a"]
    assert out.verdicts[(TENANTS, "b")].reason == "Invalid"


def test_tenant_keeps_serving_without_a_route_that_is_not_ready() -> None:
    out = render(
        snapshot(
            provider(),
            route("r", "gpt-4o", "openai"),
            tenant("t", "k", routes=["gpt-4o", "claude"]),
            secrets={"k": {"key": b"sk-tenant-0001"}},
        )
    )
    assert out.config.tenants[0].routes == ["gpt-4o"]
    verdict = out.verdicts[(TENANTS, "t")]
    assert (verdict.ready, verdict.reason) == (False, "RouteNotFound") and "'claude'" in verdict.message


def test_redis_prefix_is_per_namespace() -> None:
    out = render(Snapshot(namespace="team-a", resources=[], secrets={}, redis_url="redis://r:6379/0"))
    assert out.config.redis is not None and out.config.redis.key_prefix == "sluice:team-a"


@pytest.mark.parametrize("leases", [True, False])
def test_quota_leases_reach_the_published_text(leases: bool) -> None:
    out = render(
        Snapshot(
            namespace="team-a", resources=[], secrets={}, redis_url="redis://r:6379/0", quota_leases=leases
        )
    )
    redis = loads(config_text(out.config)).redis
    assert redis is not None and redis.quota_leases is leases


@pytest.mark.parametrize("spec", [None, {}, {"type": "nope"}])
def test_garbage_provider_specs_are_invalid_not_errors(spec: Any) -> None:
    out = render(snapshot(Resource(plural=PROVIDERS, name="p", spec=spec)))
    assert out.verdicts[(PROVIDERS, "p")].reason == "Invalid"
