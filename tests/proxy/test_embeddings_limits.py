"""Embeddings count against the tenant's limits like chat does; /readyz reports the limiter."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from tests.conftest import TENANT_KEY, basic_config
from tests.proxy_process import ProxyProcess
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.server import ThreadedServer


def test_embeddings_are_rate_limited(
    fake_openai: tuple[FakeOpenAI, ThreadedServer], start_proxy: Callable[..., ProxyProcess]
) -> None:
    config = basic_config(fake_openai[1].url)
    config["tenants"][0]["limits"] = {"requestsPerMinute": 2}
    proxy = start_proxy(config)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)
    first = client.embeddings.with_raw_response.create(model="gpt-4o", input="a")
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    client.embeddings.create(model="gpt-4o", input="b")
    with pytest.raises(openai.RateLimitError) as caught:
        client.embeddings.create(model="gpt-4o", input="c")
    assert int(caught.value.response.headers["Retry-After"]) >= 1
    assert len(fake_openai[0].requests) == 2
    assert proxy.readyz()["limiterDegraded"] is False
