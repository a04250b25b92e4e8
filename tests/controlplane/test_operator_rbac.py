"""The chart grants the operator exactly the rules its tests run it with (sluice_operator.rbac.RULES)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice_operator.rbac import RULES
from tests.controlplane.harness import ControlPlane

ROOT = Path(__file__).resolve().parents[2]


def rendered_rbac(home: Path) -> list[dict[str, Any]]:
    fetched = subprocess.run(
        [str(ROOT / "scripts" / "get-helm.sh")], capture_output=True, text=True, timeout=300, check=False
    )
    assert fetched.returncode == 0, fetched.stderr
    helm = fetched.stdout.strip().splitlines()[-1]
    result = subprocess.run(
        [helm, "template", "rel", str(ROOT / "charts" / "sluice"), "--namespace", "sluice-system",
         "--show-only", "templates/rbac.yaml"],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_chart_cluster_role_equals_the_rules_as_data(tmp_path: Path) -> None:
    docs = {d["kind"]: d for d in rendered_rbac(tmp_path)}
    assert docs["ClusterRole"]["rules"] == RULES
    account = docs["ServiceAccount"]["metadata"]
    assert (account["name"], account["namespace"]) == ("rel-sluice-operator", "sluice-system")
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-sluice-operator", "namespace": "sluice-system"}
    ]


@pytest.mark.controlplane
def test_chart_rbac_applies_to_a_real_api_server(
    control_plane: ControlPlane, tmp_path: Path, namespace: str
) -> None:
    docs = rendered_rbac(tmp_path)
    for doc in docs:
        doc["metadata"]["name"] = f"{doc['metadata']['name']}-{namespace}"
        if doc["kind"] == "ServiceAccount":
            doc["metadata"]["namespace"] = namespace
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    assert result.returncode == 0, result.stderr
