"""Long streams through the relay: events arrive whole and in order, a stream that keeps moving
outlives the route's timeout, and one that stalls mid-way is ended with an error event."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httptools
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


def _events(proxy: ProxyProcess, *, reader_pause: float = 0.0) -> list[bytes]:
    """The data of every event of one streamed completion, read as raw SSE.

    ``reader_pause``: seconds the client stops reading after its first slice, as a client busy
    elsewhere; its socket takes only a few KiB meanwhile, so the proxy has to hold the rest.
    """
    body = orjson.dumps({**BODY, "stream": True})
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n"
        f"Authorization: Bearer {TENANT_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    response = _Response()
    parser = httptools.HttpResponseParser(response)
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
        client.settimeout(30)
        client.connect(("127.0.0.1", proxy.port))
        client.sendall(head.encode() + body)
        parser.feed_data(client.recv(1024))
        time.sleep(reader_pause)
        while data := client.recv(65536):
            parser.feed_data(data)
    assert parser.get_status_code() == 200 and response.complete
    return [block.removeprefix(b"data: ") for block in b"".join(response.body).split(b"\n\n") if block]


class _Response:
    """httptools callbacks: the body, de-chunked, and whether it ended properly."""

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


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


def test_a_client_that_falls_behind_gets_every_event_in_order(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    # 20,000 events at once fill the client's socket: events then wait in the relay's own
    # buffers (the relay loop's way) and must still come out whole and in order.
    fake_openai[0].respond(Reply(stream_words=20_000))
    proxy = start_proxy(_config(fake_openai[1].url, "10s"))
    # Meanwhile the proxy has more than the client's socket takes.
    events = _events(proxy, reader_pause=0.5)
    assert _text(events) == "".join(f"w{i} " for i in range(20_000))
    assert events[-1] == b"[DONE]"
