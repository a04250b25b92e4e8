"""Generate a gateway key for an AITenant whose key Secret does not exist yet."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from .api import API_VERSION, KINDS, MANAGED_BY, TENANTS
from .kube import ApiError, Kube, core_path
from .render import MissingKeySecret

DEFAULT_DATA_KEY = "key"
PREFIX = "sk-sluice-"


def new_key() -> str:
    """256 random bits, URL-safe, recognisable in logs and secret scanners by its prefix."""
    return PREFIX + secrets.token_urlsafe(32)


def key_secret(namespace: str, missing: MissingKeySecret, tenant_uid: str | None, key: str) -> dict[str, Any]:
    """The Secret body; owned by the tenant, so deleting the tenant deletes its generated key."""
    metadata: dict[str, Any] = {
        "name": missing.secret,
        "namespace": namespace,
        "labels": {**MANAGED_BY, "sluice.dev/tenant": missing.tenant},
    }
    if tenant_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": API_VERSION, "kind": KINDS[TENANTS], "name": missing.tenant, "uid": tenant_uid}
        ]
    data_key = missing.key or DEFAULT_DATA_KEY
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {data_key: base64.b64encode(key.encode()).decode()},
    }


async def create_key_secret(
    kube: Kube, namespace: str, missing: MissingKeySecret, tenant_uid: str | None
) -> bool:
    """Create the Secret; False if it appeared meanwhile (whoever made it wins)."""
    try:
        await kube.create(
            core_path(namespace, "secrets"), key_secret(namespace, missing, tenant_uid, new_key())
        )
    except ApiError as exc:
        if exc.status == 409:
            return False
        raise
    return True
