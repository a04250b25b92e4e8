"""Write a namespace's bundle to the API server, only when its content hash changed.

The credentials Secret goes first (the config names its files), then the ConfigMap; then
every gateway pod gets the hash as an annotation: changing a pod's metadata makes its
kubelet re-sync the mounted volumes at once instead of at its next periodic sync.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .api import CONFIG_MAP, CREDENTIALS_SECRET, HASH_ANNOTATION, MANAGED_BY, PROXY_LABEL
from .bundle import Bundle
from .kube import ApiError, Kube, core_path


class NotOurs(Exception):
    """An object of the name the operator writes exists and someone else manages it."""


def _ours(obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in MANAGED_BY.items())


def _hash_of(obj: dict[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    return value if isinstance(value, str) else None


async def _put(kube: Kube, namespace: str, plural: str, body: dict[str, Any], content_hash: str) -> bool:
    """Create or replace one object; False when it already holds ``content_hash``."""
    name = body["metadata"]["name"]
    path = core_path(namespace, plural, name)
    current = await kube.get(path)
    if current is None:
        await kube.create(core_path(namespace, plural), body)
        return True
    if not _ours(current):
        raise NotOurs(
            f"{plural[:-1]} '{name}' exists without label app.kubernetes.io/managed-by=sluice-operator; "
            "delete or rename it so the operator can publish"
        )
    if _hash_of(current) == content_hash:
        return False
    # resourceVersion makes the replace fail (409) rather than overwrite a concurrent writer.
    metadata = {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
    await kube.replace(path, {**body, "metadata": metadata})
    return True


async def nudge_pods(kube: Kube, namespace: str, content_hash: str) -> int:
    """Annotate every gateway pod with the hash; returns how many were patched."""
    pods = await kube.list(core_path(namespace, "pods"), label_selector=f"{PROXY_LABEL}=true")
    stale = [p for p in pods if _hash_of(p) != content_hash and not p["metadata"].get("deletionTimestamp")]

    async def patch(pod: dict[str, Any]) -> None:
        try:
            await kube.merge_patch(
                core_path(namespace, "pods", pod["metadata"]["name"]),
                {"metadata": {"annotations": {HASH_ANNOTATION: content_hash}}},
            )
        except ApiError as exc:
            if exc.status != 404:  # a pod that went away needs no nudge
                raise

    await asyncio.gather(*(patch(p) for p in stale))
    return len(stale)


async def publish(kube: Kube, namespace: str, bundle: Bundle) -> bool:
    """Publish ``bundle``; False when the namespace already had it."""
    changed = await _put(kube, namespace, "secrets", bundle.secret, bundle.hash)
    changed = await _put(kube, namespace, "configmaps", bundle.config_map, bundle.hash) or changed
    await nudge_pods(kube, namespace, bundle.hash)
    return changed


async def unpublish(kube: Kube, namespace: str) -> None:
    """Remove the operator's objects from a namespace left without Sluice resources."""
    for plural, name in (("configmaps", CONFIG_MAP), ("secrets", CREDENTIALS_SECRET)):
        current = await kube.get(core_path(namespace, plural, name))
        if current is not None and _ours(current):
            await kube.delete(core_path(namespace, plural, name))
