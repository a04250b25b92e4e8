"""Long streams through the relay: events arrive whole and in order, a stream that keeps moving
outlives the route's timeout, and one that stalls mid-way is ended with an error event."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson

from tests.conftest import TENANT_KEY, key_hash
from tests.proxy_process import ProxyProcess
from tests.upstreams.openai import FakeOpenAI, Reply
from tests.upstreams.server import ThreadedServer

Upstream = tuple[FakeOpenAI, ThreadedServer]
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}


def _config(upstream_url: str, timeout: str) -> dict[str, object]:
    """One OpenAI backend; ``timeout`` bounds the wait for its head and for each body slice."""
    return {
        "providers": [
            {"name": "up", "type": "openai", "baseURL": f"{upstream_url}/v1", "apiKey": {"value": "k"}}
        ],
        "routes": [{"model": "gpt-4o", "backends": [{"provider": "up", "model": "m"}], "timeout": timeout}],
        "tenants": [{"name": "team-a", "keys": [{"sha256": key_hash(TENANT_KEY)}]}],
    }


def _events(proxy: ProxyProcess) -> list[bytes]:
    """The data of every event of one streamed completion, read as raw SSE."""
    with httpx.stream(
        "POST",
        f"{proxy.url}/v1/chat/completions",
        json={**BODY, "stream": True},
        headers={"Authorization": f"Bearer {TENANT_KEY}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        body = b"".join(response.iter_bytes())
    return [block.removeprefix(b"data: ") for block in body.split(b"\n\n") if block]


def _text(events: list[bytes]) -> str:
    chunks = [c for e in events if e.startswith(b"{") and "choices" in (c := orjson.loads(e))]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_a_stream_that_keeps_moving_outlives_the_route_timeout(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    # 40 chunks 50 ms apart: 2 s of stream against a 0.5 s timeout between chunks.
    fake_openai[0].respond(Reply(stream_words=40, chunk_delay=0.05))
    proxy = start_proxy(_config(fake_openai[1].url, "500ms"))
    events = _events(proxy)
    assert _text(events) == "".join(f"w{i} " for i in range(40))  # every word, in order
    assert events[-1] == b"[DONE]"
    assert proxy.metric("sluice_tokens_total", tenant="team-a", type="output") == 7  # the upstream's usage


def test_a_stream_that_stalls_mid_way_ends_with_a_timeout_error_event(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    fake_openai[0].respond(Reply(stream_words=20, chunk_delay=0.02, stall_at=10, stall=3.0))
    proxy = start_proxy(_config(fake_openai[1].url, "500ms"))
    events = _events(proxy)
    assert _text(events) == "".join(f"w{i} " for i in range(9))  # what came before the stall
    assert events[-1] == b"[DONE]"
    error = orjson.loads(events[-2])["error"]
    assert error["message"] == "provider 'up' did not answer in time"
