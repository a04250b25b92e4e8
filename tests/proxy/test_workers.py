"""--workers N: several processes share the port; metrics add up across them; a dead worker returns."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import httpx

from tests.conftest import TENANT_KEY, basic_config
from tests.proxy_process import ProxyProcess, wait_until
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.server import ThreadedServer


def worker_pids(proxy: ProxyProcess) -> set[int]:
    children = f"/proc/{proxy.process.pid}/task/{proxy.process.pid}/children"
    with open(children) as handle:
        return {int(pid) for pid in handle.read().split()}


def test_workers_share_the_port_and_aggregate_metrics(
    fake_openai: tuple[FakeOpenAI, ThreadedServer], start_proxy: Callable[..., ProxyProcess]
) -> None:
    proxy = start_proxy(basic_config(fake_openai[1].url), args=("--workers", "2"))
    wait_until(lambda: len(worker_pids(proxy)) == 2, message="two workers")
    for _ in range(20):
        with httpx.Client() as client:  # new connections, so both workers get some
            response = client.post(
                f"{proxy.url}/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
                headers={"Authorization": f"Bearer {TENANT_KEY}"},
            )
            assert response.status_code == 200
    assert proxy.metric("sluice_requests_total", tenant="team-a", model="gpt-4o", status="200") == 20
    duration = "gen_ai_server_request_duration_seconds"
    assert proxy.metric(f"{duration}_count", gen_ai_request_model="gpt-4o") == 20
    assert proxy.metric(f"{duration}_bucket", gen_ai_request_model="gpt-4o", le="+Inf") == 20
    assert proxy.metric("sluice_inflight_requests") == 1  # the scrape itself, nothing else
    assert 'sluice_config_info{checksum="' in proxy.metrics()

    victim = min(worker_pids(proxy))
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(worker_pids(proxy) - {victim}) == 2, message="the dead worker to be replaced")
    wait_until(lambda: httpx.get(f"{proxy.url}/healthz").status_code == 200, message="serving again")
