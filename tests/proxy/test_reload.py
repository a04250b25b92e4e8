"""Hot reload: atomic swaps under load, invalid configs rejected, SIGHUP, secret rotation."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice_proxy import config as config_module
from tests.conftest import OTHER_KEY, TENANT_KEY, basic_config
from tests.proxy_process import ProxyProcess, wait_until
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.server import ThreadedServer

Upstream = tuple[FakeOpenAI, ThreadedServer]
AUTH = {"Authorization": f"Bearer {TENANT_KEY}"}


def config_hash(proxy: ProxyProcess) -> str:
    return str(proxy.readyz()["config"])


async def test_reload_under_concurrent_load_fails_no_request(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    config = basic_config(fake_openai[1].url)
    proxy = start_proxy(config)
    before = config_hash(proxy)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def hammer(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            response = await client.post(
                f"{proxy.url}/v1/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": True},
                headers=AUTH,
            )
            statuses.append(response.status_code)

    async with httpx.AsyncClient(timeout=10) as client:
        workers = [asyncio.create_task(hammer(client)) for _ in range(8)]
        for generation in range(5):
            new = copy.deepcopy(config)
            new["routes"].append(
                {"model": f"extra-{generation}", "backends": [{"provider": "mock", "model": "m"}]}
            )
            proxy.write_config(new)
            await asyncio.to_thread(
                wait_until,
                lambda g=generation: _serves(proxy, f"extra-{g}"),
                10,
                0.05,
                f"extra-{generation} served",
            )
        stop.set()
        await asyncio.gather(*workers)
    assert len(statuses) > 20
    assert set(statuses) == {200}
    assert config_hash(proxy) != before
    assert proxy.metric("sluice_config_reloads_total", result="success") == 5
    assert proxy.metric("sluice_config_reload_duration_seconds_count", result="success") == 5
    assert proxy.metric("sluice_config_reload_duration_seconds_sum", result="success") > 0
    assert '"msg":"config reloaded"' in proxy.logs() and '"duration_ms":' in proxy.logs()


def _serves(proxy: ProxyProcess, model: str) -> bool:
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "x"}]},
        headers=AUTH,
        timeout=5,
    )
    return response.status_code == 200


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("routes: [{model: x, backends: [{provider: opnai, model: y}]}]", "unknown provider 'opnai'"),
        ("listen: {port: 'eighty'}", "listen.port"),
        ("routes: [unclosed", "YAML"),
    ],
)
def test_invalid_config_is_rejected_and_the_last_good_one_keeps_serving(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess], text: str, problem: str
) -> None:
    proxy = start_proxy(basic_config(fake_openai[1].url))
    good = config_hash(proxy)
    proxy.write_config(text)
    wait_until(
        lambda: proxy.metric("sluice_config_reloads_total", result="failure") == 1, message="rejection"
    )
    ready = proxy.readyz()
    assert ready["config"] == good
    assert problem in ready["lastReloadError"]
    assert problem in proxy.logs()
    assert proxy.metric("sluice_config_reload_duration_seconds_count", result="failure") == 1
    assert _serves(proxy, "gpt-4o")


def test_sighup_reloads_a_changed_file(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    config = basic_config(fake_openai[1].url)
    proxy = start_proxy(config)
    # Write in place (no ..data swap) and signal: the explicit path for non-Kubernetes installs.
    target = proxy.config_path.resolve()
    config["routes"].append({"model": "via-sighup", "backends": [{"provider": "mock", "model": "m"}]})
    import yaml

    target.write_text(yaml.safe_dump(config))
    proxy.sighup()
    wait_until(lambda: _serves(proxy, "via-sighup"), message="route added by SIGHUP")


def test_rotated_provider_key_file_is_picked_up(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess], tmp_path: Path
) -> None:
    fake, server = fake_openai
    key_file = tmp_path / "openai-key"
    key_file.write_text("sk-old\n")
    config = basic_config(server.url)
    config["providers"][0]["apiKey"] = {"file": str(key_file)}
    proxy = start_proxy(config)
    assert _serves(proxy, "gpt-4o")
    assert fake.requests[-1].headers["Authorization"] == "Bearer sk-old"
    key_file.write_text("sk-new-rotated\n")
    wait_until(
        lambda: (
            _serves(proxy, "gpt-4o") and fake.requests[-1].headers["Authorization"] == "Bearer sk-new-rotated"
        ),
        message="rotated key in use",
    )


def test_waits_for_a_config_file_that_does_not_exist_yet(fake_openai: Upstream, tmp_path: Path) -> None:
    """An optional ConfigMap is mounted before the operator renders it: 503 until it appears."""
    import subprocess
    import sys

    import yaml

    from tests.proxy_process import free_port

    path = tmp_path / "later" / "sluice.yaml"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sluice_proxy", "--config", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready_status() -> int:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code
            except httpx.HTTPError:
                return 0

        assert wait_until(lambda: ready_status() or None, message="proxy listening") == 503
        early = httpx.post(f"{url}/v1/chat/completions", json={}, headers=AUTH)
        assert early.status_code == 503 and "waiting for" in early.json()["error"]["message"]
        path.parent.mkdir()
        path.write_text(yaml.safe_dump(basic_config(fake_openai[1].url)))
        wait_until(lambda: ready_status() == 200, message="config picked up")
        response = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
            headers=AUTH,
        )
        assert response.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


def _checksum(data: dict[str, Any]) -> str:
    return config_module.checksum(config_module.loads(json.dumps(data)))


def _status(proxy: ProxyProcess, key: str, model: str) -> int:
    response = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    return response.status_code


def test_json_reloads_serve_exactly_the_new_file(
    fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]
) -> None:
    """JSON reloads reuse unchanged items; what changed (a key, a route's backend) is served at once."""
    config = basic_config(fake_openai[1].url)
    proxy = start_proxy(config)
    proxy.write_config(json.dumps(config))  # JSON from here on, as the operator publishes it
    wait_until(lambda: config_hash(proxy) == _checksum(config), message="the JSON form")
    assert _status(proxy, OTHER_KEY, "mock-echo") == 200

    config["tenants"][1]["keys"] = [{"value": "sk-team-b-rotated"}]
    config["routes"][1]["backends"] = [{"provider": "openai-main", "model": "gpt-4o-mini"}]
    proxy.write_config(json.dumps(config))
    wait_until(lambda: config_hash(proxy) == _checksum(config), message="the changed JSON")

    assert _status(proxy, OTHER_KEY, "mock-echo") == 401
    assert _status(proxy, "sk-team-b-rotated", "mock-echo") == 200
    assert fake_openai[0].requests[-1].body["model"] == "gpt-4o-mini"
    assert _status(proxy, TENANT_KEY, "gpt-4o") == 200, "the unchanged tenant and route still serve"
