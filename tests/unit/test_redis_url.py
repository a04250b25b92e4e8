"""Redis URLs: the forms redis-py and redis-cli take, and errors that never show the password."""

from __future__ import annotations

import ssl

import pytest

from sluice_proxy.config.redis_url import RedisAddress


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://r", RedisAddress(host="r")),
        ("redis://127.0.0.1:6380/2", RedisAddress(host="127.0.0.1", port=6380, db=2)),
        ("redis://:p%40ss@r/0", RedisAddress(host="r", password="p@ss")),
        (
            "redis://app:pw@r:7000?db=5",
            RedisAddress(host="r", port=7000, username="app", password="pw", db=5),
        ),
        (
            "rediss://r:6390/1?ssl_ca_certs=/etc/ca.pem",
            RedisAddress(host="r", port=6390, tls=True, db=1, ca_file="/etc/ca.pem"),
        ),
        ("rediss://r?ssl_cert_reqs=none", RedisAddress(host="r", tls=True, verify=False)),
        ("unix:///run/redis.sock", RedisAddress(socket="/run/redis.sock")),
        ("unix://:pw@/run/redis.sock?db=3", RedisAddress(socket="/run/redis.sock", password="pw", db=3)),
    ],
)
def test_url_forms(url: str, expected: RedisAddress) -> None:
    assert RedisAddress.parse(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://:hunter2@r", "must start with redis://, rediss:// or unix://, not 'http:'"),
        ("redis://:hunter2@r:port", "has a port that is not a number from 0 to 65535"),
        ("redis://:hunter2@r/zero", "names database 'zero'; a database is a number (the path, or ?db=N)"),
    ],
)
def test_errors_say_what_is_wrong_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        RedisAddress.parse(url)
    assert str(raised.value) == message
    assert "hunter2" not in str(raised.value)


def test_tls_verifies_unless_told_not_to() -> None:
    assert RedisAddress.parse("redis://r").ssl_context() is None
    verified = RedisAddress.parse("rediss://r").ssl_context()
    assert verified is not None and verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    unverified = RedisAddress.parse("rediss://r?ssl_cert_reqs=none").ssl_context()
    assert unverified is not None and unverified.verify_mode == ssl.CERT_NONE
