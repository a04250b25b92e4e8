"""The mutating admission webhook: inject the proxy sidecar into pods labelled ``sluice.dev/inject``."""

from __future__ import annotations

from typing import Any

import kopf

from .api import INJECT_LABEL
from .settings import Settings
from .sidecar import plan

HANDLER_ID = "mutate-pods"
"""kopf serves a webhook at ``/<handler id>``: the chart's MutatingWebhookConfiguration uses this path."""


def webhook_server(settings: Settings) -> kopf.WebhookServer:
    if settings.webhook_cert_dir is None:
        raise ValueError("SLUICE_WEBHOOK_CERT_DIR is not set: it must hold tls.crt and tls.key")
    return kopf.WebhookServer(
        addr=settings.webhook_host,
        port=settings.webhook_port,
        certfile=str(settings.webhook_cert_dir / "tls.crt"),
        pkeyfile=str(settings.webhook_cert_dir / "tls.key"),
    )


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    @kopf.on.mutate(
        "v1",
        "pods",
        id=HANDLER_ID,
        operation="CREATE",
        labels={INJECT_LABEL: "true"},
        side_effects=False,
        registry=registry,
    )
    def mutate_pod(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        mutation = plan(dict(body), settings.sidecar)
        if mutation is None:
            return
        patch.setdefault("spec", {}).update(
            initContainers=mutation.init_containers,
            containers=mutation.containers,
            volumes=mutation.volumes,
        )
        patch.setdefault("metadata", {})["labels"] = mutation.labels
