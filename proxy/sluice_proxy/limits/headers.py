"""OpenAI-style rate-limit headers from a limiter decision."""

from __future__ import annotations

import math

from .checks import Check, Kind
from .store import Decision


def go_duration(ms: int) -> str:
    """A duration as Go prints it, which is what OpenAI sends: ``12ms``, ``1.5s``, ``6m0s``."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{text}{seconds}s"


def retry_after(ms: int) -> str:
    """Whole seconds for ``Retry-After``, rounded up, at least 1."""
    return str(max(1, math.ceil(ms / 1000)))


_NAMES = {
    kind: (f"x-ratelimit-limit-{suffix}", f"x-ratelimit-remaining-{suffix}", f"x-ratelimit-reset-{suffix}")
    for kind, suffix in ((Kind.REQUESTS, "requests"), (Kind.TOKENS, "tokens"))
}


def rate_headers(checks: list[Check], decision: Decision, reserved_tokens: int) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` of the tightest limit of each kind."""
    admitted = decision.rejected is None
    tightest: dict[Kind, tuple[int, int, int]] = {}
    for check, used, reset in zip(checks, decision.used, decision.reset_ms, strict=True):
        kind = check.kind
        if kind is Kind.REQUESTS:
            charged = 1 if admitted else 0
        elif kind is Kind.TOKENS:
            charged = reserved_tokens if admitted else 0
        else:
            continue
        remaining = max(0, check.limit - used - charged)
        if reset <= 0 and charged > 0:
            reset = check.window_ms  # this request's own charge is the oldest in the window
        best = tightest.get(kind)
        if best is None or remaining < best[1]:
            tightest[kind] = (check.limit, remaining, reset)
    headers: dict[str, str] = {}
    for kind, (limit, remaining, reset) in tightest.items():
        limit_name, remaining_name, reset_name = _NAMES[kind]
        headers[limit_name] = str(limit)
        headers[remaining_name] = str(remaining)
        headers[reset_name] = go_duration(reset)
    return headers
