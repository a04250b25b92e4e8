"""The proxy's Redis connection speaks every URL form redis-py does: TLS, AUTH, SELECT, unix sockets."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hiredis
import pytest
import redis

from sluice_proxy.limits.batch import Evalsha, RedisClient, Script
from sluice_proxy.limits.pipe import AuthenticationError, PipeClosedError, ResponseError, open_pipe
from tests.limits.script_calls import run
from tests.proxy_process import free_port, wait_until

PASSWORD = "s3cret-redis-pass"
COUNT = "return redis.call('INCR', KEYS[1])"


@dataclass
class SecuredRedis:
    tls_port: int
    socket: Path
    ca: Path


def _certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1, its own CA."""
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return directory / "cert.pem"


@pytest.fixture
def secured_redis(tmp_path: Path) -> Iterator[SecuredRedis]:
    ca = _certificate(tmp_path)
    server = SecuredRedis(free_port(), tmp_path / "redis.sock", ca)
    process = subprocess.Popen(
        [
            "redis-server", "--port", "0", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path), "--requirepass", PASSWORD, "--unixsocket", str(server.socket),
            "--tls-port", str(server.tls_port), "--tls-cert-file", str(ca),
            "--tls-key-file", str(tmp_path / "key.pem"), "--tls-ca-cert-file", str(ca),
            "--tls-auth-clients", "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def answers() -> bool:
        try:
            with redis.Redis(unix_socket_path=str(server.socket), password=PASSWORD) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        wait_until(answers, timeout=10, message="redis-server with TLS and a unix socket")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _incr(url: str) -> int:
    pipe = await open_pipe(url)
    try:
        (reply,) = pipe.send([hiredis.pack_command(("INCR", "counted"))])
        return int(await reply)
    finally:
        pipe.close()


async def test_tls_with_username_password_and_database(secured_redis: SecuredRedis) -> None:
    url = f"rediss://default:{PASSWORD}@127.0.0.1:{secured_redis.tls_port}/3?ssl_ca_certs={secured_redis.ca}"
    assert await _incr(url) == 1
    assert await _incr(url) == 2
    with redis.Redis(unix_socket_path=str(secured_redis.socket), password=PASSWORD, db=3) as client:
        assert client.get("counted") == b"2", "SELECT 3 was applied"


async def test_unix_socket_with_password(secured_redis: SecuredRedis) -> None:
    assert await _incr(f"unix://:{PASSWORD}@{secured_redis.socket}?db=0") == 1


async def test_a_wrong_password_is_an_authentication_error(secured_redis: SecuredRedis) -> None:
    with pytest.raises(AuthenticationError):
        await _incr(f"unix://:wrong@{secured_redis.socket}")


async def test_scripts_run_over_tls(secured_redis: SecuredRedis) -> None:
    url = f"rediss://:{PASSWORD}@127.0.0.1:{secured_redis.tls_port}/0?ssl_ca_certs={secured_redis.ca}"
    client = RedisClient(url, timeout=5.0)
    try:
        count = Evalsha(Script(COUNT), ["k"])
        assert [await run(client, count), await run(client, count)] == [1, 2]
        assert await client.command("SET", "kept", b"\x00bytes", "PX", 60_000) == b"OK"
        assert await client.command("GET", "kept") == b"\x00bytes"
        assert await client.command("GET", "missing") is None
    finally:
        client.close()


async def test_error_replies_and_a_closed_pipe(secured_redis: SecuredRedis) -> None:
    pipe = await open_pipe(f"unix://:{PASSWORD}@{secured_redis.socket}")
    bad, good = pipe.send([hiredis.pack_command(("NOSUCHCOMMAND",)), hiredis.pack_command(("PING",))])
    with pytest.raises(ResponseError):
        await bad
    assert await good == b"PONG", "replies after an error reply still reach their callers"
    pipe.close()
    with pytest.raises(PipeClosedError):
        pipe.send([hiredis.pack_command(("PING",))])
