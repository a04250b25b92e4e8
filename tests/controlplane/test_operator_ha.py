"""Two operator replicas with kopf peering: exactly one is active, the other takes over when it stops.

Which replica must be active is read from the peering object (each replica's random priority,
under its ``POD_ID``), then checked by behaviour: only the active one publishes configuration.
A standby that starts below an active peer stays paused without a word, so the log cannot say it.
"""

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
PUBLISHED = "published config"


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


def priorities(plane: ControlPlane) -> dict[str, int]:
    """Replica identity (POD_ID) → priority, as the replicas wrote them into the peering object."""
    found = plane.kubectl("get", "clusterkopfpeering", PEERING, "-o", "json", check=True)
    status = json.loads(found.stdout).get("status") or {}
    return {identity: int(entry["priority"]) for identity, entry in status.items()}


def log_of(operator: RunningOperator) -> str:
    return operator.log.read_text(errors="replace")


def since_paused(operator: RunningOperator) -> str:
    """The log after the replica last stepped down (all of it for one that started as standby)."""
    return log_of(operator).split("Pausing operations")[-1]


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
        wait_until(lambda: len(priorities(control_plane)) == 2, timeout=30, message="both replicas to peer")
        ranks = priorities(control_plane)
        active, standby = (first, second) if ranks["a"] > ranks["b"] else (second, first)
        if standby is first:
            # The first replica was active alone until the higher-priority one appeared.
            wait_until(lambda: "Pausing operations" in log_of(first), timeout=30, message="a to step down")
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(route(namespace, "r1", "one")), check=True)
        wait_until(
            lambda: routed(control_plane, namespace) == {"one"}, timeout=30, message="rendered by the active"
        )
        # The line follows the ConfigMap write, which the wait above may have seen first.
        wait_until(lambda: PUBLISHED in log_of(active), timeout=10, message="the active's publish line")
        assert PUBLISHED not in since_paused(standby), (
            "the standby published while a higher-priority peer ran"
        )

        active.process.terminate()  # a clean stop withdraws its peering entry
        active.process.wait(timeout=20)
        wait_until(
            lambda: "Resuming operations" in since_paused(standby),
            timeout=60,
            message="the standby to resume",
        )
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(route(namespace, "r2", "two")), check=True)
        wait_until(
            lambda: routed(control_plane, namespace) == {"one", "two"},
            timeout=30,
            message="rendered by the standby",
        )
        wait_until(
            lambda: PUBLISHED in since_paused(standby), timeout=10, message="the standby's publish line"
        )
