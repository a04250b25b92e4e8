"""Gateway keys → tenants. Keys are only ever held as SHA-256 hashes."""

from __future__ import annotations

from multidict import CIMultiDictProxy

from .config import hash_key
from .errors import AuthenticationError
from .runtime import RuntimeConfig, RuntimeTenant


def presented_key(headers: CIMultiDictProxy[str]) -> str | None:
    """The key from ``Authorization: Bearer`` (OpenAI SDK) or ``x-api-key`` (Anthropic SDK)."""
    authorization = headers.get("Authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or None


def authenticate(headers: CIMultiDictProxy[str], runtime: RuntimeConfig) -> RuntimeTenant:
    key = presented_key(headers)
    if key is None:
        raise AuthenticationError(
            "no API key provided; send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            code="missing_api_key",
        )
    tenant = runtime.tenants_by_key_hash.get(hash_key(key))
    if tenant is None:
        raise AuthenticationError("incorrect API key provided", code="invalid_api_key")
    return tenant
