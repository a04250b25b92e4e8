"""scripts/kind-up.sh end to end on a real kind cluster.

Needs a Docker engine and about ten minutes, so it is marked ``kind`` and left out of the default
run (``addopts`` in pyproject.toml deselects it); on a machine with Docker:
``./scripts/test -m kind tests/chart/test_kind.py``.
"""

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
def test_kind_up_serves_the_openai_sdk() -> None:
    assert docker_engine_runs(), "no Docker engine answers `docker info`; the kind test needs one"
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
