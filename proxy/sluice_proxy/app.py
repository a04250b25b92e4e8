"""Wiring only: routes, middlewares and the lifetime of shared clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from . import config, handlers, metrics, usage_api
from .limits.context import limits_context
from .logs import AccessLog
from .middlewares import gateway_middleware
from .reload import reload_context
from .runtime import RuntimeConfig
from .state import ACCESS_LOG, GATEWAY, Gateway

MAX_BODY_CEILING = 1 << 30


async def _close_clients(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[GATEWAY].upstream.close()
    app[ACCESS_LOG].flush()


def make_app(
    runtime: RuntimeConfig,
    *,
    config_path: Path | None = None,
    waiting: bool = False,
    reuse: config.Reuse | None = None,
) -> web.Application:
    """The proxy application; with ``config_path`` it hot-reloads that file.

    ``waiting``: the file does not exist yet (Kubernetes mounts an optional ConfigMap
    before the operator rendered it); the proxy answers 503 until it appears.
    ``reuse``: what loading ``runtime`` from ``config_path`` left for its reloads to reuse.
    """
    # The body limit is enforced per request from the live config (it may change on reload).
    app = web.Application(middlewares=[gateway_middleware], client_max_size=MAX_BODY_CEILING)
    gateway = Gateway(runtime)
    metrics.set_config_checksum(runtime.checksum)
    app[GATEWAY] = gateway
    if waiting and config_path is not None:
        gateway.waiting_for = str(config_path)
    app[ACCESS_LOG] = AccessLog()
    app.cleanup_ctx.append(_close_clients)
    app.cleanup_ctx.append(limits_context(runtime.config.redis))
    if config_path is not None:
        app.cleanup_ctx.append(reload_context(config_path, config.Reuse() if reuse is None else reuse))
    app.router.add_post("/v1/chat/completions", handlers.chat_completions)
    app.router.add_post("/v1/messages", handlers.messages)
    app.router.add_post("/v1/embeddings", handlers.embeddings)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/v1/usage", usage_api.usage)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.prometheus)
    return app
