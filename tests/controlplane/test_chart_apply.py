"""The Helm chart's rendered manifests, applied to the real API server.

CRDs are applied for real; everything else with a server-side dry run, which runs the API
server's full validation, defaulting and admission without needing controllers or a kubelet.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import NAMESPACE, Helm
from tests.chart.manifests import ROOT
from tests.controlplane.harness import ControlPlane

pytestmark = pytest.mark.controlplane

COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "gateway-off-external-redis": {
        "gateway": {"enabled": False},
        "redis": {"bundled": {"enabled": False}, "external": {"url": "redis://redis.example:6379/0"}},
    },
    "network-policy-and-hpa": {
        "networkPolicy": {"enabled": True},
        "gateway": {"autoscaling": {"enabled": True}},
    },
}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    fetched = subprocess.run(
        [str(ROOT / "scripts" / "get-helm.sh")], capture_output=True, text=True, timeout=300, check=False
    )
    assert fetched.returncode == 0, fetched.stderr
    yield Helm(Path(fetched.stdout.strip().splitlines()[-1]), tmp_path_factory.mktemp("helm-home"))


@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_rendered_chart_is_accepted_by_the_api_server(
    control_plane: ControlPlane, helm: Helm, name: str
) -> None:
    documents = helm.template(COMBINATIONS[name])
    crds = [d for d in documents if d["kind"] == "CustomResourceDefinition"]
    rest = [d for d in documents if d["kind"] != "CustomResourceDefinition"]
    assert crds and rest
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(crds), check=True)
    for crd in crds:
        control_plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            f"crd/{crd['metadata']['name']}",
            check=True,
        )
    control_plane.kubectl("create", "namespace", NAMESPACE)  # exists already after the first case
    result = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(rest)
    )
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(rest), result.stdout
