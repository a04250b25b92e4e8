"""JSON log lines: one per request, plus operational events. Never prompts or keys."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, BinaryIO, Protocol

import orjson

LOG = logging.getLogger("sluice")
# Access lines share the logger name and level of the stdlib logger, but not its machinery.
ACCESS_LOGGER = logging.getLogger("sluice.access")

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


_second: list[tuple[int, str]] = [(-1, "")]


def timestamp(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds; the seconds part is formatted once per second."""
    second = int(epoch)
    cached, text = _second[0]
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second[0] = (second, text)
    return f"{text}.{int(epoch % 1 * 1000):03d}Z"


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


_ACCESS_HEAD = b'{"ts":"%%s","level":"info","logger":%s,"msg":"request"' % orjson.dumps(ACCESS_LOGGER.name)


class Loggable(Protocol):
    def log_fields(self) -> dict[str, Any]: ...


class AccessLog:
    """One JSON line per request, rendered and written in batches.

    A request only queues its record and the time it finished; the lines are rendered
    and written once per batch window, off the response's path and in one warm loop.
    :meth:`flush` runs at shutdown so no line is lost.
    """

    WINDOW = 0.05

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream
        self._pending: list[tuple[float, Loggable]] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        return ACCESS_LOGGER.isEnabledFor(logging.INFO)

    def emit(self, record: Loggable) -> None:
        """Queue ``record``'s line; its fields are read at the next flush."""
        self._pending.append((time.time(), record))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.WINDOW, self.flush)

    def flush(self) -> None:
        self._timer = None
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        lines = []
        for epoch, record in pending:
            try:
                # The fixed head is spliced in front of the fields' JSON: one dict per line, not two.
                body = orjson.dumps(record.log_fields(), default=str)
            except Exception:  # one broken record must not take the batch's other lines with it
                LOG.exception("an access log line could not be rendered")
                continue
            head = _ACCESS_HEAD % timestamp(epoch).encode()
            lines.append(head + b"," + body[1:] + b"\n")
        stream = self._stream or sys.stderr.buffer
        stream.write(b"".join(lines))
        stream.flush()
