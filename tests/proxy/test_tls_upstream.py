"""An HTTPS upstream: the proxy verifies it against the trust store (SSL_CERT_FILE here) and reuses connections."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import TENANT_KEY, basic_config
from tests.operator.process import write_webhook_certs
from tests.proxy_process import ProxyProcess
from tests.upstreams.openai import FakeOpenAI
from tests.upstreams.server import ThreadedServer


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[tuple[FakeOpenAI, ThreadedServer, Path]]:
    """A fake OpenAI over TLS with a certificate for 127.0.0.1 from a private CA."""
    ca = write_webhook_certs(tmp_path / "tls")
    (tmp_path / "ca.pem").write_bytes(ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "tls" / "tls.crt", tmp_path / "tls" / "tls.key")
    fake = FakeOpenAI()
    server = ThreadedServer(fake.app, ssl_context=context).start()
    yield fake, server, tmp_path / "ca.pem"
    server.stop()


def ask(proxy: ProxyProcess) -> str | None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=TENANT_KEY, max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    return completion.choices[0].message.content


def test_a_trusted_https_upstream_serves(
    tls_upstream: tuple[FakeOpenAI, ThreadedServer, Path], start_proxy: Callable[..., ProxyProcess]
) -> None:
    fake, server, ca = tls_upstream
    proxy = start_proxy(basic_config(server.url), env={"SSL_CERT_FILE": str(ca)})
    assert server.url.startswith("https://")
    assert [ask(proxy), ask(proxy)] == ["hello from upstream"] * 2
    assert len(fake.requests) == 2


def test_an_untrusted_https_upstream_is_a_502_that_says_why(
    tls_upstream: tuple[FakeOpenAI, ThreadedServer, Path], start_proxy: Callable[..., ProxyProcess]
) -> None:
    fake, server, _ = tls_upstream
    proxy = start_proxy(basic_config(server.url))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(proxy)
    assert caught.value.status_code == 502
    assert "could not be reached: SSLCertVerificationError" in caught.value.message
    assert fake.requests == []
