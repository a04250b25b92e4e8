"""Exact-match response cache for deterministic chat requests, opt-in per route (``Route.cache``).

A request is cacheable when it is deterministic (``temperature: 0``) or the client sends
``x-sluice-cache: force``. The key hashes the request with sorted keys and without the
fields that do not change the answer (``stream``, ``stream_options``, ``user``), scoped to
the tenant unless ``cache.shared``. Entries live in Redis (``<prefix>:cache:<scope>:<sha256>``,
with the route's TTL) or, without Redis, in a per-process LRU. A Redis failure is a miss.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from . import metrics
from .config import parse_duration
from .config.schema import CacheSettings
from .ingress import ChatCall, Ingress
from .limits.batch import RedisClient
from .limits.pipe import RedisError
from .providers.base import Usage
from .streaming import STREAM_HEADERS

JSON = dict[str, Any]
HEADER = "x-sluice-cache"
_IRRELEVANT = frozenset({"stream", "stream_options", "user"})


def cache_key(body: JSON, *, tenant: str, settings: CacheSettings, prefix: str = "sluice") -> str:
    normalised = {k: v for k, v in body.items() if k not in _IRRELEVANT}
    digest = hashlib.sha256(orjson.dumps(normalised, option=orjson.OPT_SORT_KEYS)).hexdigest()
    scope = "shared" if settings.shared else f"tenant:{tenant}"
    return f"{prefix}:cache:{scope}:{digest}"


def lookup_key(
    body: JSON,
    headers: Mapping[str, str],
    *,
    tenant: str,
    settings: CacheSettings | None,
    prefix: str = "sluice",
) -> str | None:
    """The cache key of a request, or None when the route does not cache it."""
    if settings is None or not settings.enabled:
        return None
    if body.get("temperature") != 0 and headers.get(HEADER, "").lower() != "force":
        return None
    return cache_key(body, tenant=tenant, settings=settings, prefix=prefix)


class ResponseCache:
    def __init__(self, redis: RedisClient | None, *, timeout: float = 0.05, max_entries: int = 1024) -> None:
        self.redis = redis
        self.timeout = timeout
        self.max_entries = max_entries
        self._local: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str, model: str) -> JSON | None:
        """The cached chat.completion, counted as a hit or miss for ``model``."""
        raw = await self._get(key)
        metrics.CACHE_REQUESTS.labels(model, "miss" if raw is None else "hit").inc()
        return None if raw is None else orjson.loads(raw)

    async def put(self, key: str, response: JSON, settings: CacheSettings) -> None:
        ttl = parse_duration(settings.ttl)
        if ttl <= 0:
            return
        raw = orjson.dumps(response)
        if self.redis is None:
            self._local[key] = (time.monotonic() + ttl, raw)
            self._local.move_to_end(key)
            while len(self._local) > self.max_entries:
                self._local.popitem(last=False)
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.command("SET", key, raw, "PX", max(1, int(ttl * 1000)))
        except (RedisError, OSError, TimeoutError):
            metrics.REDIS_ERRORS.labels("cache_put").inc()

    async def _get(self, key: str) -> bytes | None:
        if self.redis is None:
            entry = self._local.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._local[key]
                return None
            self._local.move_to_end(key)
            return entry[1]
        try:
            async with asyncio.timeout(self.timeout):
                raw: bytes | None = await self.redis.command("GET", key)
                return raw
        except (RedisError, OSError, TimeoutError):
            metrics.REDIS_ERRORS.labels("cache_get").inc()
            return None


def completion_chunks(completion: JSON, *, include_usage: bool = False) -> list[JSON]:
    """A chat.completion as the chat.completion.chunk sequence a stream of it would have carried.

    ``include_usage`` adds OpenAI's final usage chunk (``choices: []``), as a client asking
    with ``stream_options.include_usage`` gets from the provider.
    """
    base = {
        "id": completion.get("id", "chatcmpl-cached"),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    chunks: list[JSON] = []
    for choice in completion.get("choices", []):
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: JSON = {"role": message.get("role", "assistant"), "content": message.get("content")}
        if message.get("refusal") is not None:
            delta["refusal"] = message["refusal"]
        if message.get("tool_calls"):
            delta["tool_calls"] = [{**call, "index": n} for n, call in enumerate(message["tool_calls"])]
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finish = choice.get("finish_reason") or "stop"
        chunks.append({**base, "choices": [{"index": index, "delta": {}, "finish_reason": finish}]})
    if include_usage and completion.get("usage"):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


async def serve_hit(
    request: web.Request, ingress: Ingress, call: ChatCall, completion: JSON, request_id: str
) -> web.StreamResponse:
    """A cached chat.completion in the client's format: JSON, or a stream when it asked for one."""
    headers = {"x-request-id": request_id, HEADER: "hit"}
    if not call.stream:
        return web.Response(
            body=ingress.render_response(completion), headers=headers, content_type="application/json"
        )
    reported = completion.get("usage") or {}
    usage = Usage(
        input_tokens=reported.get("prompt_tokens", 0),
        output_tokens=reported.get("completion_tokens", 0),
        cached_input_tokens=(reported.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
    )
    response = web.StreamResponse(headers={**headers, **STREAM_HEADERS})
    await response.prepare(request)
    encoder = ingress.stream_encoder(model=call.model, include_usage=call.include_usage)
    frames = [
        encoder.chunk(chunk) for chunk in completion_chunks(completion, include_usage=call.include_usage)
    ]
    await response.write(b"".join([*frames, encoder.finish(usage)]))
    await response.write_eof()
    return response
