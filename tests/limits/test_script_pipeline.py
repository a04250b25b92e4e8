"""The client's per-tick writes against a real redis-server: each script call runs exactly once."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from sluice_proxy.limits.batch import Evalsha, RedisClient, Script
from tests.limits.script_calls import run
from tests.redis_server import RedisServer

COUNT = "return redis.call('INCR', KEYS[1])"
APPEND = "return redis.call('RPUSH', KEYS[1], ARGV[1])"


async def test_a_batch_half_unknown_to_redis_runs_each_call_once(redis_server: RedisServer) -> None:
    """When only some calls of a batch get NOSCRIPT, only those run again (no double admission)."""
    redis = Redis.from_url(redis_server.url)
    try:
        client = RedisClient(redis_server.url, timeout=2.0)
        count = Evalsha(Script(COUNT), ["counted"])
        append = Evalsha(Script(APPEND), ["appended"])
        await redis.script_load(COUNT)  # another replica loaded this one; APPEND is new to Redis
        replies = await asyncio.gather(
            run(client, count),
            run(client, append, "x"),
            run(client, count),
        )
        assert replies == [1, 1, 2]
        assert int(await redis.get("counted") or 0) == 2
        assert await redis.lrange("appended", 0, -1) == [b"x"]
    finally:
        client.close()
        await redis.aclose()
