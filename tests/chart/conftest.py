"""Fixtures for the chart tests: a real helm binary (scripts/get-helm.sh) run against charts/sluice."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.manifests import CHART, ROOT

RELEASE = "sluice"
NAMESPACE = "sluice-system"


class Helm:
    """The helm CLI with its own HOME, so no user config, repo or plugin leaks into a test."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": str(home / "cache")}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )

    def template(self, values: Mapping[str, Any] | None = None, *extra: str) -> list[dict[str, Any]]:
        """Render the chart (CRDs included) and return its documents; fails the test on a render error."""
        result = self.run(*self._install_args("template", values), "--include-crds", *extra)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def dry_run_install(self, values: Mapping[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        """`helm install --dry-run=client`: renders NOTES.txt and applies values.schema.json, no cluster."""
        return self.run(*self._install_args("install", values), "--dry-run=client")

    def _install_args(self, command: str, values: Mapping[str, Any] | None) -> list[str]:
        args = [command, RELEASE, str(CHART), "--namespace", NAMESPACE]
        if values:
            path = Path(self.env["HOME"]) / f"values-{abs(hash(repr(values)))}.yaml"
            path.write_text(yaml.safe_dump(dict(values)))
            args += ["--values", str(path)]
        return args


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    fetched = subprocess.run(
        [str(ROOT / "scripts" / "get-helm.sh")], capture_output=True, text=True, timeout=300, check=False
    )
    assert fetched.returncode == 0, f"scripts/get-helm.sh failed:\n{fetched.stderr}"
    yield Helm(Path(fetched.stdout.strip().splitlines()[-1]), tmp_path_factory.mktemp("helm-home"))
