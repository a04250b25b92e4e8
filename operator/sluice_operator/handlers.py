"""kopf wiring: every change of a Sluice resource, or of a Secret one references, re-renders its namespace.

Handlers use ``on.event`` rather than ``on.create``/``on.update``: the work is a level-triggered
re-render of the whole namespace, so it needs no per-object state, finalizers or annotations
on the user's objects (and Secrets are never written to).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf

from . import spend, webhook
from .api import GROUP, PLURALS, VERSION
from .coalesce import Coalescer
from .kube import Kube
from .reconcile import Reconciler
from .settings import Settings


class Operator:
    """The running operator's state: its client, the reconciler and the per-namespace queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kube = Kube()
        self.reconciler = Reconciler(self.kube, settings.redis_url, settings.quota_leases)
        self.coalescer = Coalescer(self.reconciler, delay=settings.debounce)
        self.generations: dict[str, int] = {}
        self.background: list[asyncio.Task[None]] = []

    def spec_changed(self, event: str, body: kopf.Body) -> bool:
        """False for updates that did not touch the spec (our own status patches, for instance)."""
        uid = str(body.metadata.uid)
        if event == "DELETED":
            self.generations.pop(uid, None)
            return True
        generation = int(body.metadata.get("generation") or 0)
        previous = self.generations.get(uid)
        self.generations[uid] = generation
        return previous != generation


def register(registry: kopf.OperatorRegistry, op: Operator) -> None:
    settings = op.settings

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            op.kube.use(info)
        return info

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = 20  # logging.INFO: Accepted and problems both become Events
        if op.settings.webhook_cert_dir is not None:
            settings.admission.server = webhook.webhook_server(op.settings)
        if op.settings.redis_url:
            task = spend.run(op.kube, op.reconciler, op.settings.redis_url, op.settings.spend_interval)
            op.background.append(asyncio.create_task(task, name="sluice-spend"))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in op.background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await op.coalescer.close()
        await op.kube.close()

    for plural in PLURALS:

        @kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-changed", registry=registry)
        async def resource_changed(type: str, body: kopf.Body, namespace: str | None, **_: Any) -> None:
            if namespace and op.spec_changed(type, body):
                op.coalescer.poke(namespace)

    @kopf.on.event(
        "v1",
        "secrets",
        id="secret-changed",
        when=lambda namespace, name, **_: op.reconciler.references(str(namespace), str(name)),
        registry=registry,
    )
    async def secret_changed(namespace: str | None, **_: Any) -> None:
        if namespace:
            op.coalescer.poke(namespace)

    if settings.webhook_cert_dir is not None:
        webhook.register(registry, settings)
