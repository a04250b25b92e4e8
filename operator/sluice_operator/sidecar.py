"""PURE: the pod mutation that adds sluice-proxy as a native sidecar.

The sidecar is an init container with ``restartPolicy: Always`` (Kubernetes ≥ 1.29): it
starts before the app containers, its startup probe on ``/readyz`` holds them back until
the proxy serves, and it stops after them. A pod that already has it is left alone, so
injecting twice is impossible.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .api import CONFIG_DIR, CONFIG_KEY, CONFIG_MAP, CREDENTIALS_DIR, CREDENTIALS_SECRET, PROXY_LABEL
from .settings import SidecarSettings

CONTAINER = "sluice-proxy"
CONFIG_VOLUME = "sluice-config"
CREDENTIALS_VOLUME = "sluice-credentials"


@dataclass(frozen=True)
class Mutation:
    """New values for the pod fields the injection changes."""

    init_containers: list[dict[str, Any]]
    containers: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    labels: dict[str, str]


def is_injected(pod: dict[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return any(
        c.get("name") == CONTAINER
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    )


def proxy_container(settings: SidecarSettings) -> dict[str, Any]:
    port = settings.port
    return {
        "name": CONTAINER,
        "image": settings.image,
        "restartPolicy": "Always",
        "args": [f"--config={CONFIG_DIR}/{CONFIG_KEY}", "--host=127.0.0.1", f"--port={port}"],
        "ports": [{"name": "sluice", "containerPort": port, "protocol": "TCP"}],
        "startupProbe": {
            "httpGet": {"path": "/readyz", "port": port, "host": "127.0.0.1"},
            "periodSeconds": 1,
            "failureThreshold": 120,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": port, "host": "127.0.0.1"},
            "periodSeconds": 5,
        },
        "resources": copy.deepcopy(settings.resources),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": CREDENTIALS_VOLUME, "mountPath": CREDENTIALS_DIR, "readOnly": True},
        ],
    }


def _with_base_urls(container: dict[str, Any], port: int) -> dict[str, Any]:
    """Point the OpenAI and Anthropic SDKs at the sidecar unless the app already chose a URL."""
    env = list(container.get("env") or [])
    present = {e.get("name") for e in env}
    wanted = {
        "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    env += [{"name": name, "value": value} for name, value in wanted.items() if name not in present]
    return {**container, "env": env}


def plan(pod: dict[str, Any], settings: SidecarSettings) -> Mutation | None:
    """The injection for ``pod``, or None when it already has the sidecar."""
    if is_injected(pod):
        return None
    spec = pod.get("spec") or {}
    # First, so that the pod's other init containers can call the proxy too.
    init_containers = [proxy_container(settings), *(spec.get("initContainers") or [])]
    containers = [_with_base_urls(c, settings.port) for c in spec.get("containers") or []]
    # Optional: the pod starts before the operator's first render; the startup probe waits for the config.
    volumes = [
        *(spec.get("volumes") or []),
        {"name": CONFIG_VOLUME, "configMap": {"name": CONFIG_MAP, "optional": True}},
        {"name": CREDENTIALS_VOLUME, "secret": {"secretName": CREDENTIALS_SECRET, "optional": True}},
    ]
    # The label makes the operator nudge this pod's kubelet after each publish.
    labels = {**((pod.get("metadata") or {}).get("labels") or {}), PROXY_LABEL: "true"}
    return Mutation(init_containers, containers, volumes, labels)
