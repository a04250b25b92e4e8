"""Limiter tests run against a real redis-server; runtime objects come from a real config."""

from __future__ import annotations

from typing import Any

from sluice_proxy.config import decode
from sluice_proxy.runtime import RuntimeRoute, RuntimeTenant, compile_config
from tests.redis_server import redis_server

__all__ = ["make_runtime", "redis_server"]


def make_runtime(
    tenant: dict[str, Any] | None = None, route: dict[str, Any] | None = None, tenants: int = 1
) -> tuple[list[RuntimeTenant], RuntimeRoute]:
    """Tenants ``team-0``… with ``tenant`` fields, on a mock route ``gpt-4o`` with ``route`` fields."""
    config = decode(
        {
            "providers": [{"name": "mock", "type": "mock"}],
            "routes": [
                {"model": "gpt-4o", "backends": [{"provider": "mock", "model": "gpt-4o"}], **(route or {})}
            ],
            "tenants": [
                {"name": f"team-{i}", "keys": [{"value": f"sk-test-key-{i:04d}"}], **(tenant or {})}
                for i in range(tenants)
            ],
        }
    )
    runtime = compile_config(config)
    by_name = {t.name: t for t in runtime.tenants_by_key_hash.values()}
    return [by_name[f"team-{i}"] for i in range(tenants)], runtime.routes["gpt-4o"]
