"""Response cache: keys, determinism, tenant isolation, TTL, Redis and in-process, chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from redis.asyncio import Redis

from sluice_proxy.cache import ResponseCache, cache_key, completion_chunks, lookup_key
from sluice_proxy.config.schema import CacheSettings
from sluice_proxy.limits.batch import RedisClient
from tests.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

PER_TENANT = CacheSettings(ttl="5m")
SHARED = CacheSettings(ttl="5m", shared=True)
REQUEST = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def test_the_key_ignores_streaming_user_and_key_order() -> None:
    streamed = {"stream": True, "stream_options": {"include_usage": True}, "user": "u1", **REQUEST}
    reordered = dict(reversed(list(REQUEST.items())))
    key = cache_key(REQUEST, tenant="a", settings=PER_TENANT)
    assert cache_key(streamed, tenant="a", settings=PER_TENANT) == key
    assert cache_key(reordered, tenant="a", settings=PER_TENANT) == key
    assert cache_key({**REQUEST, "max_tokens": 5}, tenant="a", settings=PER_TENANT) != key


def test_keys_are_per_tenant_unless_shared() -> None:
    assert cache_key(REQUEST, tenant="a", settings=PER_TENANT) != cache_key(
        REQUEST, tenant="b", settings=PER_TENANT
    )
    assert cache_key(REQUEST, tenant="a", settings=SHARED) == cache_key(REQUEST, tenant="b", settings=SHARED)


def test_only_deterministic_or_forced_requests_are_cached() -> None:
    assert lookup_key(REQUEST, {}, tenant="a", settings=PER_TENANT) is not None
    warm = {**REQUEST, "temperature": 0.7}
    assert lookup_key(warm, {}, tenant="a", settings=PER_TENANT) is None
    assert lookup_key({"model": "m", "messages": []}, {}, tenant="a", settings=PER_TENANT) is None
    assert lookup_key(warm, {"x-sluice-cache": "force"}, tenant="a", settings=PER_TENANT) is not None
    assert lookup_key(REQUEST, {}, tenant="a", settings=None) is None
    assert lookup_key(REQUEST, {}, tenant="a", settings=CacheSettings(enabled=False)) is None


@pytest.fixture(params=["redis", "in-process"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ResponseCache]:
    if request.param == "in-process":
        yield ResponseCache(None)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = RedisClient(server.url, timeout=2)
    yield ResponseCache(client, timeout=2)
    client.close()


async def test_a_stored_response_is_a_hit_for_its_tenant_only(cache: ResponseCache) -> None:
    mine = cache_key(REQUEST, tenant="a", settings=PER_TENANT)
    theirs = cache_key(REQUEST, tenant="b", settings=PER_TENANT)
    assert await cache.get(mine, "gpt-4o") is None
    await cache.put(mine, COMPLETION, PER_TENANT)
    assert await cache.get(mine, "gpt-4o") == COMPLETION
    assert await cache.get(theirs, "gpt-4o") is None


async def test_entries_expire_with_the_route_ttl(cache: ResponseCache) -> None:
    key = cache_key(REQUEST, tenant="a", settings=PER_TENANT)
    await cache.put(key, COMPLETION, CacheSettings(ttl="0s"))
    assert await cache.get(key, "gpt-4o") is None


async def test_redis_entries_carry_the_ttl(redis_server: RedisServer) -> None:
    client = RedisClient(redis_server.url, timeout=2)
    key = cache_key(REQUEST, tenant="a", settings=PER_TENANT)
    await ResponseCache(client, timeout=2).put(key, COMPLETION, CacheSettings(ttl="90s"))
    client.close()
    reader = Redis.from_url(redis_server.url)  # redis-py, independent of the proxy's client
    assert 0 < await reader.pttl(key) <= 90_000
    await reader.aclose()


async def test_a_redis_outage_is_a_miss_not_an_error(redis_server: RedisServer) -> None:
    client = RedisClient(redis_server.url, timeout=0.05)
    cache = ResponseCache(client, timeout=0.05)
    key = cache_key(REQUEST, tenant="a", settings=PER_TENANT)
    await cache.put(key, COMPLETION, PER_TENANT)
    assert await cache.get(key, "gpt-4o") == COMPLETION  # connected and stored
    redis_server.kill()
    assert await cache.get(key, "gpt-4o") is None
    await cache.put(key, COMPLETION, PER_TENANT)
    client.close()


async def test_the_in_process_cache_evicts_the_least_recently_used() -> None:
    cache = ResponseCache(None, max_entries=2)
    keys = [cache_key({**REQUEST, "seed": i}, tenant="a", settings=PER_TENANT) for i in range(3)]
    await cache.put(keys[0], COMPLETION, PER_TENANT)
    await cache.put(keys[1], COMPLETION, PER_TENANT)
    await cache.get(keys[0], "m")
    await cache.put(keys[2], COMPLETION, PER_TENANT)
    assert [await cache.get(k, "m") is not None for k in keys] == [True, False, True]


def test_a_completion_replays_as_valid_openai_chunks() -> None:
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    completion = {
        **COMPLETION,
        "choices": [
            *COMPLETION["choices"],  # type: ignore[misc]
            {
                "index": 1,
                "message": {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                "finish_reason": "tool_calls",
            },
        ],
    }
    ChatCompletion.model_validate(completion)
    chunks = [ChatCompletionChunk.model_validate(c) for c in completion_chunks(completion)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices[0].index == 0)
    assert text == "hello"
    calls = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].function is not None and calls[0].function.name == "f" and calls[0].index == 0
    assert [c.choices[0].finish_reason for c in chunks] == [None, "stop", None, "tool_calls"]
