"""Fixtures shared by every test layer: fake upstreams and real proxy processes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.proxy_process import ProxyProcess
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.server import ThreadedServer

TENANT_KEY = "sk-test-team-a-0123456789"
OTHER_KEY = "sk-test-team-b-0123456789"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def fake_openai() -> Iterator[tuple[FakeOpenAI, ThreadedServer]]:
    fake = FakeOpenAI()
    server = ThreadedServer(fake.app).start()
    yield fake, server
    server.stop()


FAILED_LOG_LINES = 80
"""Lines of each proxy's log printed when its test fails: CI output keeps only what a test prints."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def start_proxy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., ProxyProcess]]:
    """Factory: ``start_proxy(config_dict, env=None)`` → a ready ProxyProcess (stopped after the test).

    When the test fails, the end of each proxy's log is printed with the failure.
    """
    started: list[ProxyProcess] = []

    def start(
        config: dict[str, Any], env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> ProxyProcess:
        directory = tmp_path / f"config-{len(started)}"
        directory.mkdir()
        process = ProxyProcess(directory, config, env, args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        if request.node.stash.get(_CALL_FAILED, False):
            tail = process.log_path.read_text(errors="replace").splitlines()[-FAILED_LOG_LINES:]
            print(f"--- last {len(tail)} lines of {process.log_path} ---", *tail, sep="\n")


def basic_config(upstream_url: str, **route_extra: Any) -> dict[str, Any]:
    """One OpenAI-format provider, route gpt-4o → it, tenants team-a (all) and team-b (mock only)."""
    return {
        "providers": [
            {
                "name": "openai-main",
                "type": "openai",
                "baseURL": f"{upstream_url}/v1",
                "apiKey": {"value": "sk-upstream-secret"},
            },
            {"name": "mock", "type": "mock"},
        ],
        "routes": [
            {
                "model": "gpt-4o",
                "backends": [{"provider": "openai-main", "model": "gpt-4o-2024-08-06"}],
                **route_extra,
            },
            {"model": "mock-echo", "backends": [{"provider": "mock", "model": "mock-echo"}]},
        ],
        "tenants": [
            {"name": "team-a", "keys": [{"sha256": key_hash(TENANT_KEY)}], "routes": ["*"]},
            {"name": "team-b", "keys": [{"value": OTHER_KEY}], "routes": ["mock-echo"]},
        ],
    }
