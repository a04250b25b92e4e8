"""sluice-operator against a real kube-apiserver, running with only the RBAC the chart grants."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane.harness import ControlPlane
from tests.operator.process import RunningOperator, running_operator, webhook_configuration
from tests.proxy_process import wait_until
from tests.redis_server import RedisServer

pytestmark = pytest.mark.controlplane

GV = "/apis/sluice.dev/v1alpha1"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[RunningOperator]:
    with running_operator(control_plane, tmp_path_factory.mktemp("operator"), redis_url) as running:
        yield running


class Namespace:
    """Apply and read objects in one test namespace."""

    def __init__(self, plane: ControlPlane, name: str, operator: RunningOperator) -> None:
        self.plane = plane
        self.name = name
        self.operator = operator

    def apply(self, *objects: dict[str, Any]) -> None:
        manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.plane.kubectl("apply", "-n", self.name, "-f", "-", input=json.dumps(manifest), check=True)

    def delete(self, kind: str, name: str) -> None:
        self.plane.kubectl("delete", kind, name, "-n", self.name, check=True)

    def get(self, path: str) -> Any:
        return self.plane.get(path)

    def resource(self, plural: str, name: str) -> Any:
        return self.get(f"{GV}/namespaces/{self.name}/{plural}/{name}")

    def config_map(self) -> Any:
        return self.get(f"/api/v1/namespaces/{self.name}/configmaps/sluice-config")

    def config(self) -> dict[str, Any] | None:
        cm = self.config_map()
        if cm is None:
            return None
        loaded: dict[str, Any] = yaml.safe_load(cm["data"]["sluice.yaml"])
        return loaded

    def wait(self, condition: Any, message: str, timeout: float = 30) -> Any:
        try:
            return wait_until(condition, timeout=timeout, interval=0.05, message=message)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- operator log ---\n{self.operator.logs()}") from None

    def ready(self, plural: str, name: str) -> dict[str, Any] | None:
        """The Ready condition once it reflects the current generation."""
        obj = self.resource(plural, name)
        status = (obj or {}).get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

    def events(self, reason: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(f"/api/v1/namespaces/{self.name}/events")["items"]
        return [e for e in items if e.get("reason") == reason]


@pytest.fixture
def ns(control_plane: ControlPlane, namespace: str, operator: RunningOperator) -> Namespace:
    return Namespace(control_plane, namespace, operator)


def secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def provider(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "ProviderSecret",
        "metadata": {"name": name},
        "spec": spec,
    }


def route(name: str, model: str, provider_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AIRoute",
        "metadata": {"name": name},
        "spec": {"model": model, "backends": [{"provider": provider_name, "model": f"upstream-{model}"}]},
    }


def tenant(name: str, secret_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AITenant",
        "metadata": {"name": name},
        "spec": {"keySecretRef": {"name": secret_name}, **spec},
    }


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def routed(config: dict[str, Any] | None) -> set[str]:
    return {r["model"] for r in (config or {}).get("routes", [])}


def tenant_hashes(config: dict[str, Any] | None, name: str) -> set[str]:
    tenants = {t["name"]: t for t in (config or {}).get("tenants", [])}
    return {k["sha256"] for k in tenants[name]["keys"]} if name in tenants else set()


def basic_setup(ns: Namespace) -> None:
    ns.apply(
        secret("team-keys", a="sk-team-0000001"),
        secret("upstream", apiKey="sk-upstream-1"),
        provider("mock", type="mock"),
        provider("openai", type="openai", apiKeySecretRef={"name": "upstream", "key": "apiKey"}),
        route("chat", "gpt-4o", "mock"),
        tenant("team", "team-keys"),
    )


def test_create_renders_the_config_and_reports_ready(ns: Namespace) -> None:
    basic_setup(ns)
    config = ns.wait(
        lambda: (c := ns.config()) and "gpt-4o" in routed(c) and tenant_hashes(c, "team") and c, "config"
    )
    assert tenant_hashes(config, "team") == {sha("sk-team-0000001")}
    assert "sk-team-0000001" not in json.dumps(config)
    openai = next(p for p in config["providers"] if p["name"] == "openai")
    assert openai["apiKey"] == {"file": "/etc/sluice/credentials/openai"}
    credentials = ns.get(f"/api/v1/namespaces/{ns.name}/secrets/sluice-credentials")
    assert base64.b64decode(credentials["data"]["openai"]) == b"sk-upstream-1"
    config_hash = ns.config_map()["metadata"]["annotations"]["sluice.dev/config-hash"]
    assert ns.config_map()["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sluice-operator"
    for plural, name in [("providersecrets", "mock"), ("airoutes", "chat"), ("aitenants", "team")]:
        condition = ns.wait(
            lambda p=plural, n=name: (c := ns.ready(p, n)) and c["status"] == "True" and c, f"{name} Ready"
        )
        assert condition["reason"] == "Accepted"
        status = ns.wait(
            lambda p=plural, n=name: (
                (s := ns.resource(p, n)["status"]).get("configHash") == config_hash and s
            ),
            f"{name} configHash",
        )
        assert status["observedGeneration"] == 1


def test_update_rerenders_and_observes_the_new_generation(ns: Namespace) -> None:
    basic_setup(ns)
    ns.wait(lambda: "gpt-4o" in routed(ns.config()), "first render")
    ns.apply(route("chat", "gpt-4o-mini", "mock"))
    ns.wait(lambda: routed(ns.config()) == {"gpt-4o-mini"}, "updated route")
    ns.wait(
        lambda: (c := ns.ready("airoutes", "chat")) and c["observedGeneration"] == 2, "generation 2 observed"
    )


def test_delete_removes_the_route_and_finally_the_published_objects(ns: Namespace) -> None:
    basic_setup(ns)
    ns.apply(route("second", "claude", "mock"))
    ns.wait(lambda: routed(ns.config()) == {"gpt-4o", "claude"}, "two routes")
    ns.delete("airoute", "second")
    ns.wait(lambda: routed(ns.config()) == {"gpt-4o"}, "route removed")
    ns.plane.kubectl("delete", "providersecrets,airoutes,aitenants", "--all", "-n", ns.name, check=True)
    ns.wait(lambda: ns.config_map() is None, "ConfigMap deleted")
    assert ns.get(f"/api/v1/namespaces/{ns.name}/secrets/sluice-credentials") is None
    assert ns.get(f"/api/v1/namespaces/{ns.name}/secrets/team-keys") is not None  # the user's Secret stays


def test_missing_provider_is_reported_and_the_rest_keeps_serving(ns: Namespace) -> None:
    basic_setup(ns)
    ns.apply(route("broken", "claude", "anthropic"))
    condition = ns.wait(
        lambda: (c := ns.ready("airoutes", "broken")) and c["status"] == "False" and c,
        "broken route condition",
    )
    assert condition["reason"] == "ProviderNotFound" and "anthropic" in condition["message"]
    assert routed(ns.config()) == {"gpt-4o"}
    events = ns.wait(lambda: ns.events("ProviderNotFound"), "ProviderNotFound Event")
    assert events[0]["involvedObject"]["name"] == "broken" and events[0]["type"] == "Warning"
    # Fixing the cause heals it without touching the route.
    ns.apply(provider("anthropic", type="mock"))
    ns.wait(lambda: "claude" in routed(ns.config()), "route served once its provider exists")
    ns.wait(lambda: (c := ns.ready("airoutes", "broken")) and c["status"] == "True", "route Ready")


def test_adding_a_key_to_the_tenant_secret_rotates_without_downtime(ns: Namespace) -> None:
    basic_setup(ns)
    ns.wait(lambda: tenant_hashes(ns.config(), "team") == {sha("sk-team-0000001")}, "first key")
    ns.apply(secret("team-keys", a="sk-team-0000001", b="sk-team-0000002"))
    ns.wait(
        lambda: tenant_hashes(ns.config(), "team") == {sha("sk-team-0000001"), sha("sk-team-0000002")},
        "both keys",
    )
    ns.apply(secret("team-keys", b="sk-team-0000002"))
    ns.wait(lambda: tenant_hashes(ns.config(), "team") == {sha("sk-team-0000002")}, "old key retired")


def test_tenant_without_its_secret_gets_a_generated_key(ns: Namespace) -> None:
    basic_setup(ns)
    ns.apply(tenant("newcomer", "newcomer-key"))
    generated = ns.wait(
        lambda: ns.get(f"/api/v1/namespaces/{ns.name}/secrets/newcomer-key"), "generated Secret"
    )
    key = base64.b64decode(generated["data"]["key"]).decode()
    assert key.startswith("sk-sluice-") and len(key) >= 50
    assert generated["metadata"]["ownerReferences"][0]["name"] == "newcomer"
    ns.wait(lambda: tenant_hashes(ns.config(), "newcomer") == {sha(key)}, "generated key served")
    ns.wait(lambda: (c := ns.ready("aitenants", "newcomer")) and c["status"] == "True", "tenant Ready")


def test_gateway_pods_get_the_config_hash(ns: Namespace) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gateway", "labels": {"sluice.dev/proxy": "true"}},
        "spec": {"containers": [{"name": "proxy", "image": "example.test/sluice-proxy:test"}]},
    }
    ns.apply(pod)
    basic_setup(ns)
    ns.wait(lambda: ns.config_map(), "config")

    def annotated() -> bool:
        current = ns.config_map()["metadata"]["annotations"]["sluice.dev/config-hash"]
        gateway = ns.get(f"/api/v1/namespaces/{ns.name}/pods/gateway")
        return bool((gateway["metadata"].get("annotations") or {}).get("sluice.dev/config-hash") == current)

    ns.wait(annotated, "gateway pod annotated with the config hash")
    ns.apply(route("second", "claude", "mock"))
    ns.wait(lambda: "claude" in routed(ns.config()), "new config")
    ns.wait(annotated, "gateway pod annotated with the new hash")


def test_spend_is_read_from_redis_into_status(ns: Namespace, redis_url: str) -> None:
    import datetime

    import redis

    basic_setup(ns)
    ns.apply(tenant("team", "team-keys", budget={"usd": 20, "period": "month"}))
    ns.wait(lambda: (c := ns.ready("aitenants", "team")) and c["observedGeneration"] == 2, "budgeted tenant")
    month = datetime.datetime.now(datetime.UTC).strftime("%Y-%m")
    key = f"{{sluice:{ns.name}}}:t:team:usage:month:{month}"
    with redis.Redis.from_url(redis_url) as client:
        client.hset(key, mapping={"spend_micro": 5_000_000, "input_tokens": 1200, "output_tokens": 300})
    spend = ns.wait(
        lambda: (
            (s := (ns.resource("aitenants", "team").get("status") or {}).get("spend")) and s["usd"] == 5 and s
        ),
        "spend in status",
    )
    assert spend["budgetUSD"] == 20 and spend["usedPercent"] == 25
    assert spend["tokens"] == {"input": 1200, "output": 300} and spend["period"] == "month"


def test_webhook_injects_exactly_one_sidecar(ns: Namespace, control_plane: ControlPlane) -> None:
    name = f"sluice-inject-{ns.name}"
    control_plane.kubectl(
        "apply", "-f", "-", input=json.dumps(webhook_configuration(name, ns.operator)), check=True
    )
    try:
        app = {"name": "app", "image": "example.test/app:1"}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "labels": {"sluice.dev/inject": "true"}},
            "spec": {"containers": [app]},
        }
        ns.apply(pod)
        stored = ns.get(f"/api/v1/namespaces/{ns.name}/pods/app")
        sidecars = [c for c in stored["spec"].get("initContainers", []) if c["name"] == "sluice-proxy"]
        assert len(sidecars) == 1 and sidecars[0]["restartPolicy"] == "Always"
        assert sidecars[0]["image"] == "example.test/sluice-proxy:test"
        env = {e["name"]: e["value"] for e in stored["spec"]["containers"][0]["env"]}
        assert env["OPENAI_BASE_URL"].startswith("http://127.0.0.1:") and env["OPENAI_BASE_URL"].endswith(
            "/v1"
        )
        assert stored["metadata"]["labels"]["sluice.dev/proxy"] == "true"

        # A pod that already carries the sidecar (e.g. re-created from an injected manifest) gets no second one.
        again = {
            **pod,
            "metadata": {"name": "again", "labels": stored["metadata"]["labels"]},
            "spec": {
                "initContainers": stored["spec"]["initContainers"],
                "containers": stored["spec"]["containers"],
                "volumes": stored["spec"]["volumes"],
            },
        }
        ns.apply(again)
        stored_again = ns.get(f"/api/v1/namespaces/{ns.name}/pods/again")
        names = [
            c["name"] for c in stored_again["spec"]["initContainers"] + stored_again["spec"]["containers"]
        ]
        assert names.count("sluice-proxy") == 1
        assert [v["name"] for v in stored_again["spec"]["volumes"]].count("sluice-config") == 1

        plain = {**pod, "metadata": {"name": "plain"}}
        ns.apply(plain)
        assert "initContainers" not in ns.get(f"/api/v1/namespaces/{ns.name}/pods/plain")["spec"]
    finally:
        control_plane.kubectl("delete", "mutatingwebhookconfiguration", name, check=True)


def test_operator_log_is_json(operator: RunningOperator) -> None:
    lines = [line for line in Path(operator.log).read_text().splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines[:20])
