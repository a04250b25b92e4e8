"""Shared objects of a running proxy, reached through typed application and request keys."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import metrics
from .breaker import Breakers, State
from .logs import AccessLog
from .providers import Usage
from .runtime import RuntimeConfig
from .upstream import Upstream

SERVER = "sluice"
"""The ``Server`` header of every response: no library or Python version for scanners to match."""


class Gateway:
    """What every request needs: the current config snapshot and the long-lived clients."""

    def __init__(self, runtime: RuntimeConfig) -> None:
        self.runtime = runtime
        self.upstream = Upstream()
        self.breakers = Breakers(on_change=_export_breaker_state)
        self.config_error: str | None = None
        """The last rejected reload, shown by /readyz until a good one arrives."""
        self.waiting_for: str | None = None
        """The config file the proxy waits for (not rendered yet); /readyz is 503 meanwhile."""

    def swap(self, runtime: RuntimeConfig) -> None:
        """Atomically serve ``runtime``; requests in flight keep the snapshot they hold."""
        self.runtime = runtime
        self.config_error = None
        self.waiting_for = None
        metrics.set_config_checksum(runtime.checksum)


def _export_breaker_state(key: str, state: State) -> None:
    provider, _, model = key.partition("/")
    metrics.BREAKER_STATE.labels(provider, model).set(int(state))


@dataclass(slots=True, init=False)  # its own __init__: see setup.py
class RequestContext:
    """What the access log line says about one request; filled in as the request proceeds."""

    request_id: str
    method: str
    path: str
    started: float
    finished: float
    status: int
    tenant: str
    model: str
    route: str
    provider: str
    upstream_model: str
    stream: bool
    first_token_at: float | None
    usage: Usage | None
    usage_estimated: bool
    cost_usd: float | None
    error: str | None

    def __init__(self, request_id: str, method: str, path: str) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.started = time.perf_counter()
        self.finished = 0.0
        self.status = 500
        self.tenant = self.model = self.route = self.provider = self.upstream_model = ""
        self.stream = False
        self.first_token_at = None
        self.usage = None
        self.usage_estimated = False
        self.cost_usd = None
        self.error = None

    def log_fields(self) -> dict[str, Any]:
        """The access log line's fields, once the response is done."""
        usage = self.usage
        return {
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "tenant": self.tenant or None,
            "model": self.model or None,
            "route": self.route or None,
            "provider": self.provider or None,
            "upstream_model": self.upstream_model or None,
            "stream": self.stream,
            "latency_ms": round((self.finished - self.started) * 1000, 3),
            "ttft_ms": None
            if self.first_token_at is None
            else round((self.first_token_at - self.started) * 1000, 3),
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "usage_estimated": self.usage_estimated,
            "cost_usd": self.cost_usd,
            "error": self.error,
        }


GATEWAY = web.AppKey("gateway", Gateway)
CONTEXT = web.RequestKey("context", RequestContext)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
