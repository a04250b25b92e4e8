"""The chart installs the same CRDs as crds/ (run scripts/sync-crds.sh after editing crds/)."""

from __future__ import annotations

import yaml

from tests.chart.manifests import CHART, ROOT

CHART_ONLY = {"kopf-peering.yaml"}  # kopf's own peering CRDs, not part of the sluice.dev API
SLUICE_KINDS = {"AIRoute", "AITenant", "ProviderSecret"}


def test_chart_crds_are_byte_identical_copies() -> None:
    source = {path.name: path.read_bytes() for path in (ROOT / "crds").glob("*.yaml")}
    copies = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert source, "crds/ holds no CRD yet"
    assert set(copies) - CHART_ONLY == set(source), "run scripts/sync-crds.sh"
    for name, content in source.items():
        assert copies[name] == content, (
            f"charts/sluice/crds/{name} differs from crds/{name}: run scripts/sync-crds.sh"
        )


def test_chart_carries_every_sluice_kind_and_kopf_peering() -> None:
    kinds = {
        doc["spec"]["names"]["kind"]
        for path in (CHART / "crds").glob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    assert kinds >= SLUICE_KINDS | {"ClusterKopfPeering", "KopfPeering"}
