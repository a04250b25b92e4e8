"""Settings.from_env(): the chart's environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice_operator.settings import Settings, SettingsError


def test_chart_environment() -> None:
    s = Settings.from_env(
        {
            "SLUICE_WATCH_NAMESPACES": "a, b,",
            "SLUICE_REDIS_URL": "redis://r:6379/0",
            "SLUICE_PROXY_IMAGE": "img:1",
            "SLUICE_SIDECAR_PORT": "4001",
            "SLUICE_SIDECAR_RESOURCES": '{"requests": {"cpu": "10m"}}',
            "SLUICE_WEBHOOK_CERT_DIR": "/etc/sluice/webhook",
            "SLUICE_PEERING_NAME": "sluice",
        }
    )
    assert s.namespaces == ("a", "b") and s.redis_url == "redis://r:6379/0"
    assert (s.sidecar.image, s.sidecar.port, s.sidecar.resources) == (
        "img:1",
        4001,
        {"requests": {"cpu": "10m"}},
    )
    assert s.webhook_cert_dir == Path("/etc/sluice/webhook") and s.peering_name == "sluice"


def test_empty_environment_watches_everything_standalone() -> None:
    s = Settings.from_env({})
    assert (
        s.namespaces == () and s.redis_url is None and s.peering_name is None and s.webhook_cert_dir is None
    )


@pytest.mark.parametrize(
    ("name", "value"), [("SLUICE_SIDECAR_PORT", "http"), ("SLUICE_SIDECAR_RESOURCES", "[1]")]
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
