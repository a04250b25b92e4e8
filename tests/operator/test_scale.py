"""2,000 AIRoutes and 10,000 AITenants in one namespace fit one ConfigMap and the proxy reads them back."""

from __future__ import annotations

import base64
import gzip
import time

import msgspec

from sluice_operator.api import PROVIDERS, ROUTES, TENANTS
from sluice_operator.bundle import MAX_OBJECT_BYTES, build
from sluice_operator.render import Resource, Snapshot, render
from sluice_proxy.config import decode

ROUTE_COUNT, TENANT_COUNT = 2_000, 10_000


def big_snapshot() -> Snapshot:
    resources = [
        Resource(plural=PROVIDERS, name=name, spec={"type": kind})
        for name, kind in (("openai", "openai"), ("anthropic", "anthropic"))
    ]
    resources += [
        Resource(
            plural=ROUTES,
            name=f"route-{i}",
            spec={
                "model": f"model-{i}",
                "backends": [
                    {"provider": "openai", "model": f"gpt-{i}"},
                    {"provider": "anthropic", "model": f"claude-{i}", "priority": 1},
                ],
                "limits": {"requestsPerMinute": 600},
            },
        )
        for i in range(ROUTE_COUNT)
    ]
    resources += [
        Resource(
            plural=TENANTS,
            name=f"tenant-{i}",
            spec={
                "keySecretRef": {"name": f"tenant-{i}-keys"},
                "routes": [f"model-{i % ROUTE_COUNT}", f"model-{(i + 1) % ROUTE_COUNT}"],
                "limits": {"requestsPerMinute": 60, "tokensPerMinute": 100_000},
                "budget": {"usd": 100, "period": "month"},
            },
        )
        for i in range(TENANT_COUNT)
    ]
    secrets = {f"tenant-{i}-keys": {"key": f"sk-sluice-{i:08d}-secret".encode()} for i in range(TENANT_COUNT)}
    return Snapshot(namespace="big", resources=resources, secrets=secrets)


def test_large_namespace_renders_under_the_object_limit() -> None:
    snapshot = big_snapshot()
    started = time.perf_counter()
    rendering = render(snapshot)
    bundle = build("big", rendering.config, rendering.credentials)
    elapsed = time.perf_counter() - started
    assert all(v.ready for v in rendering.verdicts.values())
    assert bundle.compressed
    packed = bundle.config_map["binaryData"]["sluice.yaml"]
    assert len(packed) < MAX_OBJECT_BYTES < 1024 * 1024
    text = gzip.decompress(base64.b64decode(packed))
    assert text.startswith(b"{")
    config = decode(msgspec.json.decode(text))
    assert len(config.routes) == ROUTE_COUNT and len(config.tenants) == TENANT_COUNT
    print(
        f"\nrender+bundle {elapsed:.2f}s; yaml {len(text)} bytes; published {len(packed)} bytes (gzip+base64)"
    )


def test_small_config_stays_plain_text() -> None:
    rendering = render(Snapshot(namespace="s", resources=[], secrets={}))
    bundle = build("s", rendering.config, rendering.credentials)
    assert not bundle.compressed and "sluice.yaml" in bundle.config_map["data"]
