"""The custom resources: names on the API server and their specs as typed values.

``AIRoute.spec`` is exactly :class:`sluice_proxy.config.Route`; the other two kinds carry
Kubernetes-style references (``*SecretRef``) that the renderer resolves.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

from sluice_proxy.config import Budget, Limits, ModelLimits, ProviderType, Route

GROUP = "sluice.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

PROVIDERS = "providersecrets"
ROUTES = "airoutes"
TENANTS = "aitenants"
PLURALS = (PROVIDERS, ROUTES, TENANTS)
KINDS = {PROVIDERS: "ProviderSecret", ROUTES: "AIRoute", TENANTS: "AITenant"}

MANAGED_BY = {"app.kubernetes.io/managed-by": "sluice-operator"}
PROXY_LABEL = "sluice.dev/proxy"
INJECT_LABEL = "sluice.dev/inject"
HASH_ANNOTATION = "sluice.dev/config-hash"
CONFIG_MAP = "sluice-config"
CONFIG_KEY = "sluice.yaml"
CREDENTIALS_SECRET = "sluice-credentials"
CONFIG_DIR = "/etc/sluice/config"
CREDENTIALS_DIR = "/etc/sluice/credentials"


class _Spec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, rename="camel"):
    pass


class SecretKeyRef(_Spec):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    key: Annotated[str, msgspec.Meta(min_length=1)]


class TenantKeyRef(_Spec):
    """A Secret of gateway keys: one data key, or (no ``key``) every data key, so keys rotate without downtime."""

    name: Annotated[str, msgspec.Meta(min_length=1)]
    key: Annotated[str, msgspec.Meta(min_length=1)] | None = None


class ProviderSecretSpec(_Spec):
    type: ProviderType
    base_url: str | None = msgspec.field(default=None, name="baseURL")
    api_key_secret_ref: SecretKeyRef | None = None
    api_version: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class AITenantSpec(_Spec):
    key_secret_ref: TenantKeyRef
    routes: list[str] = msgspec.field(default_factory=lambda: ["*"])
    limits: Limits | None = None
    model_limits: list[ModelLimits] = msgspec.field(default_factory=list)
    budget: Budget | None = None


class SpecError(ValueError):
    """A spec the schema rejects; ``path`` names the field (``spec.backends[0].weight``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


SpecT = TypeVar("SpecT", ProviderSecretSpec, Route, AITenantSpec)


def decode_spec(spec: Any, into: type[SpecT]) -> SpecT:
    """Convert a resource's ``spec`` into ``into``; errors name the field under ``spec``."""
    try:
        return msgspec.convert(spec or {}, into, str_keys=True)
    except msgspec.ValidationError as exc:
        text, sep, where = str(exc).rpartition(" - at `")
        if not sep:
            raise SpecError("spec", str(exc)) from None
        raise SpecError("spec" + where.rstrip("`").removeprefix("$"), text) from None


SPEC_TYPES: dict[str, type[Any]] = {PROVIDERS: ProviderSecretSpec, ROUTES: Route, TENANTS: AITenantSpec}
