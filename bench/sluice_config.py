"""Sluice configurations for the bench: every feature on, limits too high to ever reject."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Final

import orjson
import yaml

TOKEN: Final = "sk-bench-0123456789abcdef"
MODEL: Final = "gpt-bench"
LONG_MODEL: Final = "gpt-bench-long"
HUGE: Final = 1_000_000_000
PRICING: Final = {"input": 2.5, "output": 10.0, "cachedInput": 1.25}


def _sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _limits() -> dict[str, int]:
    return {"requestsPerMinute": HUGE, "tokensPerMinute": HUGE * 1000, "concurrency": HUGE}


def _route(model: str, provider: str, limited: bool) -> dict[str, Any]:
    route = {
        "model": model,
        "backends": [{"provider": provider, "model": model, "pricing": PRICING}],
        "timeout": "60s",
    }
    return route | {"limits": _limits()} if limited else route


def _tenant(name: str, key: str, routes: list[str], limited: bool) -> dict[str, Any]:
    tenant: dict[str, Any] = {"name": name, "keys": [{"sha256": _sha256(key)}], "routes": routes}
    if limited:
        tenant |= {"limits": _limits(), "budget": {"usd": float(HUGE), "period": "month", "alertPercent": 80}}
    return tenant


def render(
    upstream_port: int,
    redis_port: int,
    long_chunks: int,
    long_ms: int,
    *,
    routes: int = 0,
    tenants: int = 0,
    limited: bool = True,
) -> dict[str, Any]:
    """The bench config; ``routes``/``tenants`` add that many extra entries for the scale scenario.

    ``limited=False`` leaves out Redis, limits and budgets (pricing, metrics and logs stay), to
    show what the limiter costs.
    """
    base = f"http://127.0.0.1:{upstream_port}"
    scale_models = [f"scale-model-{i:05d}" for i in range(routes)]
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 0},
        "server": {"logLevel": "info"},
        "metrics": {"tenantLabels": True},
        "providers": [
            {"name": "bench", "type": "openai", "baseURL": f"{base}/v1", "apiKey": {"value": "x"}},
            {
                "name": "bench-long",
                "type": "openai",
                "baseURL": f"{base}/long/{long_chunks}/{long_ms}/v1",
                "apiKey": {"value": "x"},
            },
        ],
        "routes": [
            _route(MODEL, "bench", limited),
            _route(LONG_MODEL, "bench-long", limited),
            *(_route(model, "bench", limited) for model in scale_models),
        ],
        "tenants": [
            _tenant("bench", TOKEN, ["*"], limited),
            *(
                _tenant(
                    f"tenant-{i:05d}",
                    f"sk-tenant-{i:05d}-key",
                    [MODEL, *scale_models[i % max(routes, 1) : i % max(routes, 1) + 3]],
                    limited,
                )
                for i in range(tenants)
            ),
        ],
    }
    if limited:
        # A saturated proxy's event loop lags past the 50 ms default, which then reads as
        # "Redis down" and flips the limiter to its local store mid-run; 1 s keeps every
        # request on the Redis path the figures claim to measure.
        config["redis"] = {"url": f"redis://127.0.0.1:{redis_port}/0", "timeout": "1s", "failMode": "open"}
    return config


def write(path: Path, config: dict[str, Any]) -> None:
    """Write atomically (temp file + rename), as a ConfigMap update appears to the proxy.

    JSON for a ``.json`` path (how the operator publishes large namespaces), YAML otherwise.
    """
    temporary = path.with_suffix(".tmp")
    if path.suffix == ".json":
        temporary.write_bytes(orjson.dumps(config))
    else:
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        temporary.write_text(yaml.dump(config, Dumper=dumper, sort_keys=False))
    os.replace(temporary, path)
