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
            "SLUICE_QUOTA_LEASES": "false",
            "SLUICE_PROXY_IMAGE": "img:1",
            "SLUICE_SIDECAR_PORT": "4001",
            "SLUICE_SIDECAR_RESOURCES": '{"requests": {"cpu": "10m"}}',
            "SLUICE_WEBHOOK_CERT_DIR": "/etc/sluice/webhook",
            "SLUICE_PEERING_NAME": "sluice",
        }
    )
    assert s.namespaces == ("a", "b") and s.redis_url == "redis://r:6379/0" and s.quota_leases is False
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
    assert s.quota_leases is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("Yes", True),
        (" false ", False),
        ("0", False),
        ("no", False),
    ],
)
def test_quota_leases_spellings(value: str, expected: bool) -> None:
    assert Settings.from_env({"SLUICE_QUOTA_LEASES": value}).quota_leases is expected


def test_bad_quota_leases_names_the_variable_and_the_accepted_values() -> None:
    with pytest.raises(
        SettingsError, match=r"SLUICE_QUOTA_LEASES='off': expected true or false \(or 1/0, yes/no\)"
    ):
        Settings.from_env({"SLUICE_QUOTA_LEASES": "off"})


@pytest.mark.parametrize(
    ("name", "value"), [("SLUICE_SIDECAR_PORT", "http"), ("SLUICE_SIDECAR_RESOURCES", "[1]")]
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
