"""scripts/kind-up.sh end to end on a real kind cluster (needs a Docker engine; slow, marked `kind`)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.chart.manifests import ROOT


def docker_engine_runs() -> bool:
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


@pytest.mark.kind
@pytest.mark.timeout(1200)
@pytest.mark.skipif(not docker_engine_runs(), reason="no Docker engine answers `docker info`; kind needs one")
def test_kind_up_serves_the_openai_sdk() -> None:
    env = {**os.environ, "KEEP": "0", "CLUSTER": "sluice-test", "LOCAL_PORT": "18181"}
    result = subprocess.run(
        [str(ROOT / "scripts" / "kind-up.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gateway answered:" in result.stdout
