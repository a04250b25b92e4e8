"""Apply resources → the operator renders → a real sluice-proxy serves them, without a kubelet.

The test stands in for the kubelet: it copies the ConfigMap into a directory the way a
ConfigMap volume is projected (timestamped directory + atomic ``..data`` symlink swap).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.controlplane.harness import ControlPlane
from tests.operator.process import RunningOperator, running_operator
from tests.proxy_process import ProxyProcess, wait_until

pytestmark = pytest.mark.controlplane

TENANT_KEY = "sk-e2e-tenant-000001"


@pytest.fixture(scope="module")
def operator(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningOperator]:
    with running_operator(control_plane, tmp_path_factory.mktemp("operator-e2e")) as running:
        yield running


class Kubelet:
    """Projects the namespace's ConfigMap into ``proxy``'s config directory whenever its hash changes."""

    def __init__(self, plane: ControlPlane, namespace: str) -> None:
        self.plane = plane
        self.namespace = namespace
        self.synced: str | None = None

    def config_map(self) -> dict[str, Any] | None:
        cm: dict[str, Any] | None = self.plane.get(
            f"/api/v1/namespaces/{self.namespace}/configmaps/sluice-config"
        )
        return cm

    def text(self) -> str | None:
        cm = self.config_map()
        return None if cm is None else str(cm["data"]["sluice.yaml"])

    def sync(self, proxy: ProxyProcess) -> bool:
        """Project a changed ConfigMap; True when it did."""
        cm = self.config_map()
        if cm is None:
            return False
        current = cm["metadata"]["annotations"]["sluice.dev/config-hash"]
        if current == self.synced:
            return False
        proxy.write_config(cm["data"]["sluice.yaml"])
        self.synced = current
        return True


def apply(plane: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=True)


def sluice(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "sluice.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def keys_secret(**keys: str) -> dict[str, Any]:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in keys.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e2e-keys"}, "data": data}


def mock_route(name: str, model: str) -> dict[str, Any]:
    return sluice(
        "AIRoute", name, {"model": model, "backends": [{"provider": "mock", "model": f"echo-{model}"}]}
    )


def serves(proxy: ProxyProcess, model: str, key: str = TENANT_KEY) -> bool:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0, timeout=5)
    try:
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "ping"}])
    except openai.APIStatusError:
        return False
    return bool(reply.choices)


def test_applied_resources_are_served_by_a_real_proxy(
    control_plane: ControlPlane, namespace: str, operator: RunningOperator, tmp_path: Path
) -> None:
    apply(
        control_plane,
        namespace,
        keys_secret(first=TENANT_KEY),
        sluice("ProviderSecret", "mock", {"type": "mock"}),
        mock_route("chat", "e2e-chat"),
        sluice("AITenant", "e2e", {"keySecretRef": {"name": "e2e-keys"}}),
    )
    kubelet = Kubelet(control_plane, namespace)
    text = wait_until(
        lambda: (t := kubelet.text()) and "e2e-chat" in t and "tenants" in t and t,
        timeout=30,
        message="first render",
    )
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    proxy = ProxyProcess(config_dir, {})
    try:
        wait_until(lambda: kubelet.sync(proxy) or kubelet.synced, timeout=10, message="first projection")
        assert "e2e-chat" in text
        wait_until(lambda: serves(proxy, "e2e-chat"), timeout=15, message="proxy serves the first route")
        assert not serves(proxy, "e2e-chat", key="sk-not-a-tenant-key")

        # apply → served: the operator's render and publish plus the proxy's reload (no kubelet delay).
        started = time.monotonic()
        apply(control_plane, namespace, mock_route("second", "e2e-second"))

        def second_served() -> bool:
            kubelet.sync(proxy)
            return serves(proxy, "e2e-second")

        wait_until(second_served, timeout=30, interval=0.05, message="proxy serves the new route")
        elapsed = time.monotonic() - started
        print(f"\napply -> served: {elapsed:.2f}s")

        # Key rotation end to end: a key added to the tenant's Secret works once projected.
        apply(control_plane, namespace, keys_secret(first=TENANT_KEY, second="sk-e2e-tenant-000002"))

        def second_key_works() -> bool:
            kubelet.sync(proxy)
            return serves(proxy, "e2e-chat", key="sk-e2e-tenant-000002")

        wait_until(second_key_works, timeout=30, interval=0.05, message="the rotated-in key is accepted")
        assert serves(proxy, "e2e-chat")
    finally:
        proxy.stop()
