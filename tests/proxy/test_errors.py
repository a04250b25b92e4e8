"""Bad input gets a 4xx in OpenAI's error shape that names the problem; never a 500."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.conftest import OTHER_KEY, TENANT_KEY, basic_config
from tests.proxy_process import ProxyProcess
from tests.upstreams.openai import FakeOpenAI, Reply
from tests.upstreams.server import ThreadedServer

Upstream = tuple[FakeOpenAI, ThreadedServer]
AUTH = {"Authorization": f"Bearer {TENANT_KEY}"}


@pytest.fixture
def proxy(fake_openai: Upstream, start_proxy: Callable[..., ProxyProcess]) -> ProxyProcess:
    config = basic_config(fake_openai[1].url)
    config["server"] = {"maxBodyBytes": 4096}
    return start_proxy(config)


def post(proxy: ProxyProcess, body: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return httpx.post(
        f"{proxy.url}/v1/chat/completions",
        content=data,
        headers=AUTH if headers is None else headers,
        timeout=10,
    )


@pytest.mark.parametrize(
    ("body", "status", "param", "needle"),
    [
        ("{not json", 400, None, "not valid JSON"),
        ("", 400, None, "empty"),
        ("[1, 2]", 400, None, "JSON object"),
        ('{"messages": [{"role": "user", "content": "x"}]}', 400, "model", "model"),
        ('{"model": 42, "messages": []}', 400, "model", "string"),
        ('{"model": "gpt-4o"}', 400, "messages", "messages"),
        ('{"model": "gpt-4o", "messages": "hi"}', 400, "messages", "array"),
        (
            '{"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}',
            400,
            "messages[0].role",
            "wizard",
        ),
        (
            '{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "stream",
            "boolean",
        ),
        (
            '{"model": "gpt-5-ultra", "messages": [{"role": "user", "content": "x"}]}',
            404,
            "model",
            "gpt-5-ultra",
        ),
    ],
)
def test_bad_requests_name_the_problem(
    proxy: ProxyProcess, body: str, status: int, param: str | None, needle: str
) -> None:
    response = post(proxy, body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert needle in error["message"]
    assert response.headers["x-request-id"]


def test_oversized_body_is_413(proxy: ProxyProcess) -> None:
    body = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "' + "x" * 5000 + '"}]}'
    response = post(proxy, body)
    assert response.status_code == 413
    assert "4096" in response.json()["error"]["message"]


def test_missing_and_wrong_keys_are_401(proxy: ProxyProcess) -> None:
    body = '{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}'
    missing = post(proxy, body, headers={})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    wrong = post(proxy, body, headers={"Authorization": "Bearer sk-nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-nope" not in wrong.text
    via_x_api_key = post(proxy, body, headers={"x-api-key": TENANT_KEY})
    assert via_x_api_key.status_code == 200


def test_route_outside_the_tenant_is_403(proxy: ProxyProcess) -> None:
    sdk = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=OTHER_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "team-b" in str(caught.value)


def test_upstream_client_error_is_passed_on_without_retry(proxy: ProxyProcess, fake_openai: Upstream) -> None:
    fake, _ = fake_openai
    fake.respond(Reply(status=400, error_message="max_tokens is too large"))
    response = post(proxy, '{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}')
    assert response.status_code == 400
    assert "max_tokens is too large" in response.json()["error"]["message"]
    assert len(fake.requests) == 1


def test_upstream_rejecting_our_credentials_is_a_502_that_says_so(
    proxy: ProxyProcess, fake_openai: Upstream
) -> None:
    fake, _ = fake_openai
    fake.respond(Reply(status=401, error_message="Incorrect API key provided"))
    response = post(proxy, '{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}')
    assert response.status_code == 502
    assert "credentials" in response.json()["error"]["message"]
    assert "sk-upstream-secret" not in response.text


@pytest.mark.parametrize("raw", [b"<html>bad gateway</html>", b"[1, 2]"])
def test_a_200_whose_body_does_not_decode_is_a_502_naming_the_provider(
    proxy: ProxyProcess, fake_openai: Upstream, raw: bytes
) -> None:
    fake, _ = fake_openai
    fake.respond(Reply(raw_body=raw))
    response = post(proxy, '{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}')
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert message.startswith("provider '") and "sent an answer that is not valid openai JSON" in message


def test_unknown_path_is_an_openai_shaped_404(proxy: ProxyProcess) -> None:
    response = httpx.get(f"{proxy.url}/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["message"]
