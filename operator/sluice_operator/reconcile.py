"""Level-triggered reconcile of one namespace: read everything, render, publish, report.

Each run starts from a fresh LIST of the namespace, so it never depends on which events
it saw or missed; running it twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from sluice_proxy.config import Budget

from .api import CREDENTIALS_SECRET, GROUP, KINDS, PLURALS, TENANTS, VERSION
from .bundle import TooLarge, build
from .keys import create_key_secret
from .kube import ApiError, Kube, core_path, group_path
from .publish import NotOurs, publish, unpublish
from .render import Resource, Snapshot, Verdict, render
from .status import READY, status_patch

LOG = logging.getLogger("sluice_operator")
PUBLISH_FAILED = "PublishFailed"
# Secrets that never hold provider or gateway keys, and can be large (Helm keeps releases in them).
SECRET_FIELDS = "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token"


@dataclass(frozen=True)
class TenantView:
    """What the spend reporter needs of one served AITenant."""

    name: str
    budget: Budget | None
    spend: dict[str, Any] | None


@dataclass
class NamespaceView:
    referenced_secrets: frozenset[str] = frozenset()
    tenants: list[TenantView] = field(default_factory=list)
    config_hash: str | None = None


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_secret(obj: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


def _old_reason(obj: dict[str, Any]) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == READY:
            reason = condition.get("reason")
            return reason if isinstance(reason, str) else None
    return None


class Reconciler:
    def __init__(self, kube: Kube, redis_url: str | None, quota_leases: bool) -> None:
        self.kube = kube
        self.redis_url = redis_url
        self.quota_leases = quota_leases
        self.views: dict[str, NamespaceView] = {}
        self._patching = asyncio.Semaphore(16)

    def references(self, namespace: str, secret: str) -> bool:
        view = self.views.get(namespace)
        return view is not None and secret in view.referenced_secrets

    async def _list(
        self, namespace: str
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, bytes]]]:
        lists = await asyncio.gather(
            *(self.kube.list(group_path(GROUP, VERSION, namespace, p)) for p in PLURALS),
            self.kube.list(core_path(namespace, "secrets"), field_selector=SECRET_FIELDS),
        )
        objects = dict(zip(PLURALS, lists[:-1], strict=True))
        secrets = {
            s["metadata"]["name"]: decode_secret(s)
            for s in lists[-1]
            if s["metadata"]["name"] != CREDENTIALS_SECRET
        }
        return objects, secrets

    async def __call__(self, namespace: str) -> None:
        objects, secrets = await self._list(namespace)
        if not any(objects.values()):
            self.views.pop(namespace, None)
            await unpublish(self.kube, namespace)
            return
        resources = [
            Resource(
                plural=plural,
                name=obj["metadata"]["name"],
                spec=obj.get("spec"),
                created=obj["metadata"].get("creationTimestamp", ""),
            )
            for plural, items in objects.items()
            for obj in items
        ]
        rendering = render(
            Snapshot(
                namespace=namespace,
                resources=resources,
                secrets=secrets,
                redis_url=self.redis_url,
                quota_leases=self.quota_leases,
            )
        )
        view = NamespaceView(referenced_secrets=rendering.referenced_secrets)
        self.views[namespace] = view

        uids = {o["metadata"]["name"]: o["metadata"].get("uid") for o in objects[TENANTS]}
        for missing in rendering.missing_key_secrets:
            if await create_key_secret(self.kube, namespace, missing, uids.get(missing.tenant)):
                LOG.info(
                    "generated gateway key Secret %s/%s for AITenant %s",
                    namespace,
                    missing.secret,
                    missing.tenant,
                )

        verdicts = rendering.verdicts
        try:
            bundle = build(namespace, rendering.config, rendering.credentials)
            if await publish(self.kube, namespace, bundle):
                LOG.info(
                    "published config %s to %s (%d bytes%s)",
                    bundle.hash,
                    namespace,
                    bundle.config_bytes,
                    ", gzip" if bundle.compressed else "",
                )
            view.config_hash = bundle.hash
        except (TooLarge, NotOurs) as exc:
            # Keep the last published config serving; say why on every resource.
            LOG.error("not publishing namespace %s: %s", namespace, exc)
            verdicts = {
                k: v if not v.ready else Verdict(False, PUBLISH_FAILED, str(exc)) for k, v in verdicts.items()
            }

        served = {t.name: t for t in rendering.config.tenants}
        view.tenants = [
            TenantView(
                o["metadata"]["name"],
                served[o["metadata"]["name"]].budget,
                (o.get("status") or {}).get("spend"),
            )
            for o in objects[TENANTS]
            if o["metadata"]["name"] in served
        ]
        now = now_rfc3339()
        await asyncio.gather(
            *(
                self._report(
                    namespace, plural, obj, verdicts[(plural, obj["metadata"]["name"])], view.config_hash, now
                )
                for plural, items in objects.items()
                for obj in items
            )
        )

    async def _report(
        self,
        namespace: str,
        plural: str,
        obj: dict[str, Any],
        verdict: Verdict,
        config_hash: str | None,
        now: str,
    ) -> None:
        """Patch the status when it changed; an Event when the verdict's reason changed."""
        generation = int(obj["metadata"].get("generation") or 1)
        patch = status_patch(verdict, generation, config_hash, obj.get("status") or {}, now)
        if patch is None:
            return
        name = obj["metadata"]["name"]
        async with self._patching:
            try:
                await self.kube.merge_patch(
                    group_path(GROUP, VERSION, namespace, plural, name) + "/status", {"status": patch}
                )
            except ApiError as exc:
                if exc.status == 404:  # deleted meanwhile: its DELETED event renders again
                    return
                raise
        if _old_reason(obj) != verdict.reason:
            body = kopf.Body(cast(kopf.RawBody, {**obj, "kind": obj.get("kind") or KINDS[plural]}))
            if verdict.ready:
                kopf.info(body, reason=verdict.reason, message=verdict.message)
            else:
                kopf.warn(body, reason=verdict.reason, message=verdict.message)
