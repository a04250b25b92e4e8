"""Operator settings, read once from the environment (the chart sets every variable)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


class SettingsError(ValueError):
    """An environment variable the operator cannot use; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds") from None


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return _BOOLEANS[raw.lower()]
    except KeyError:
        raise SettingsError(f"{name}={raw!r}: expected true or false (or 1/0, yes/no)") from None


def _resources(env: Mapping[str, str]) -> dict[str, Any]:
    raw = env.get("SLUICE_SIDECAR_RESOURCES", "").strip()
    if not raw:
        return DEFAULT_RESOURCES
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"SLUICE_SIDECAR_RESOURCES: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SettingsError('SLUICE_SIDECAR_RESOURCES: expected a JSON object like {"requests": {...}}')
    return value


@dataclass(frozen=True, kw_only=True)
class SidecarSettings:
    """What the webhook injects."""

    image: str = "ghcr.io/sluice-dev/sluice-proxy:latest"
    port: int = 4000
    resources: dict[str, Any] = field(default_factory=lambda: DEFAULT_RESOURCES)


@dataclass(frozen=True, kw_only=True)
class Settings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means every namespace."""
    redis_url: str | None = None
    quota_leases: bool = True
    """redis.quotaLeases of every rendered config; False puts every request through Redis."""
    peering_name: str | None = None
    """kopf peering object; None runs standalone (one replica)."""
    health_port: int = 8081
    log_level: str = "info"
    webhook_port: int = 9443
    webhook_host: str = "0.0.0.0"
    webhook_cert_dir: Path | None = None
    """Holds tls.crt and tls.key; None disables the webhook server."""
    sidecar: SidecarSettings = field(default_factory=SidecarSettings)
    debounce: float = 0.2
    """Seconds to gather a burst of changes in one namespace into one render."""
    spend_interval: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        namespaces = tuple(
            ns.strip() for ns in env.get("SLUICE_WATCH_NAMESPACES", "").split(",") if ns.strip()
        )
        cert_dir = env.get("SLUICE_WEBHOOK_CERT_DIR", "").strip()
        return cls(
            namespaces=namespaces,
            redis_url=env.get("SLUICE_REDIS_URL", "").strip() or None,
            quota_leases=_bool(env, "SLUICE_QUOTA_LEASES", True),
            peering_name=env.get("SLUICE_PEERING_NAME", "").strip() or None,
            health_port=_int(env, "SLUICE_HEALTH_PORT", 8081),
            log_level=env.get("SLUICE_LOG_LEVEL", "info").strip().lower() or "info",
            webhook_port=_int(env, "SLUICE_WEBHOOK_PORT", 9443),
            webhook_host=env.get("SLUICE_WEBHOOK_HOST", "0.0.0.0").strip() or "0.0.0.0",
            webhook_cert_dir=Path(cert_dir) if cert_dir else None,
            sidecar=SidecarSettings(
                image=env.get("SLUICE_PROXY_IMAGE", "").strip() or SidecarSettings.image,
                port=_int(env, "SLUICE_SIDECAR_PORT", 4000),
                resources=_resources(env),
            ),
            debounce=_float(env, "SLUICE_DEBOUNCE_SECONDS", 0.2),
            spend_interval=_float(env, "SLUICE_SPEND_INTERVAL_SECONDS", 30.0),
        )
