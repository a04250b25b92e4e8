"""NOTES.txt tells the user the next step for what they installed."""

from __future__ import annotations

from tests.chart.conftest import NAMESPACE, RELEASE, Helm


def notes(helm: Helm, values: dict[str, object] | None = None) -> str:
    result = helm.dry_run_install(values)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_default_install_explains_gateway_and_sidecar(helm: Helm) -> None:
    text = notes(helm)
    assert f"kubectl -n {NAMESPACE} get sluice" in text
    assert f"port-forward svc/{RELEASE}-gateway 8080:80" in text
    assert 'sluice.dev/inject: "true"' in text
    assert "http://127.0.0.1:4000/v1" in text
    assert f"helm test {RELEASE}" in text
    assert "WARNING" not in text


def test_sidecar_only_install_does_not_mention_the_gateway(helm: Helm) -> None:
    text = notes(helm, {"gateway": {"enabled": False}})
    assert "port-forward" not in text
    assert "3. For a per-app sidecar" in text


def test_missing_redis_is_called_out(helm: Helm) -> None:
    text = notes(helm, {"redis": {"bundled": {"enabled": False}}})
    assert "WARNING: no Redis" in text
