"""Redis URLs (``redis.url``): where the proxy's limiter and response cache find Redis."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class RedisAddress:
    """Where a Redis URL points and how to log in: ``redis://``, ``rediss://`` (TLS), ``unix://``.

    The URL forms redis-py and redis-cli take: ``redis://[[user]:password@]host[:port][/db]``,
    ``unix://[[user]:password@]/path/to/socket[?db=N]``; ``?db=N`` overrides the path's
    database, ``rediss://`` also takes ``?ssl_ca_certs=<file>`` and ``?ssl_cert_reqs=none``.
    """

    host: str = "localhost"
    port: int = 6379
    socket: str | None = None
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    ca_file: str | None = None
    verify: bool = True

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """The address of ``url``; ValueError names what is wrong with it."""
        # The messages never repeat the URL: it may carry a password.
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"must start with redis://, rediss:// or unix://, not '{parts.scheme}:'")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError("has a port that is not a number from 0 to 65535") from None
        query = {name: unquote(values[0]) for name, values in parse_qs(parts.query).items() if values}
        db = query.get("db") or (parts.path.strip("/") if parts.scheme != "unix" else "") or "0"
        if not db.isdigit():
            raise ValueError(f"names database '{db}'; a database is a number (the path, or ?db=N)")
        return cls(
            host=unquote(parts.hostname or "localhost"),
            port=port,
            socket=unquote(parts.path) if parts.scheme == "unix" else None,
            tls=parts.scheme == "rediss",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            db=int(db),
            ca_file=query.get("ssl_ca_certs"),
            verify=query.get("ssl_cert_reqs", "required") != "none",
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
