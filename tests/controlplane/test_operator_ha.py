"""Two operator replicas with kopf peering: exactly one is active, the other takes over when it stops."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.manifests import CHART
from tests.controlplane.harness import ControlPlane
from tests.operator.process import RunningOperator, running_operator
from tests.proxy_process import wait_until

pytestmark = pytest.mark.controlplane

PEERING = "sluice-ha-test"


def route(namespace: str, name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AIRoute",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": model, "backends": [{"provider": "mock", "model": "echo"}]},
    }


def routed(plane: ControlPlane, namespace: str) -> set[str]:
    found = plane.kubectl("get", "configmap", "sluice-config", "-n", namespace, "-o", "json")
    if found.returncode != 0:
        return set()
    data = json.loads(found.stdout).get("data") or {}
    config = yaml.safe_load(data.get("sluice.yaml") or "{}") or {}
    return {r["model"] for r in config.get("routes") or []}


def paused(operator: RunningOperator) -> bool:
    return "Pausing operations" in operator.log.read_text(errors="replace")


def test_one_replica_is_active_and_the_other_takes_over(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("apply", "-f", str(CHART / "crds" / "kopf-peering.yaml"), check=True)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev", check=True
    )
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}}
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(peering), check=True)
    provider = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "ProviderSecret",
        "metadata": {"name": "mock", "namespace": namespace},
        "spec": {"type": "mock"},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(provider), check=True)

    with (
        running_operator(control_plane, tmp_path / "a", peering_name=PEERING) as first,
        running_operator(control_plane, tmp_path / "b", peering_name=PEERING) as second,
    ):
        wait_until(lambda: paused(first) or paused(second), timeout=30, message="one replica to pause")
        standby, active = (first, second) if paused(first) else (second, first)
        assert not paused(active), "exactly one replica is active"
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(route(namespace, "r1", "one")), check=True)
        wait_until(
            lambda: routed(control_plane, namespace) == {"one"}, timeout=30, message="rendered by the active"
        )

        active.process.terminate()  # a clean stop withdraws its peering entry
        active.process.wait(timeout=20)
        wait_until(
            lambda: "Resuming operations" in standby.log.read_text(errors="replace"),
            timeout=60,
            message="the standby to resume",
        )
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(route(namespace, "r2", "two")), check=True)
        wait_until(
            lambda: routed(control_plane, namespace) == {"one", "two"},
            timeout=30,
            message="rendered by the standby",
        )
