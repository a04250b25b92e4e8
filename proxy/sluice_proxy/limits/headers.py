"""OpenAI-style rate-limit headers from a limiter decision."""

from __future__ import annotations

import functools
import math

from .checks import Kind, Windows
from .store import Decision


@functools.lru_cache(maxsize=4096)  # a window's resets repeat: one value per ms of a second
def go_duration(ms: int) -> str:
    """A duration as Go prints it, which is what OpenAI sends: ``12ms``, ``1.5s``, ``6m0s``."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    # Integer arithmetic: formatting a float and stripping it took longer than the rest.
    return f"{text}{seconds}.{millis:03d}".rstrip("0") + "s" if millis else f"{text}{seconds}s"


def retry_after(ms: int) -> str:
    """Whole seconds for ``Retry-After``, rounded up, at least 1."""
    return str(max(1, math.ceil(ms / 1000)))


_NAMES = {
    kind: (f"x-ratelimit-limit-{suffix}", f"x-ratelimit-remaining-{suffix}", f"x-ratelimit-reset-{suffix}")
    for kind, suffix in ((Kind.REQUESTS, "requests"), (Kind.TOKENS, "tokens"))
}


def rate_headers(windows: Windows, decision: Decision, reserved_tokens: int) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` of the tightest limit of each kind."""
    admitted = decision.rejected is None
    used, resets = decision.used, decision.reset_ms
    headers: dict[str, str] = {}
    for kind, members in windows:
        charged = (1 if kind is Kind.REQUESTS else reserved_tokens) if admitted else 0
        tightest, least = members[0], -1
        for member in members:
            remaining = member[1] - used[member[0]] - charged
            if remaining < 0:
                remaining = 0
            if least < 0 or remaining < least:
                tightest, least = member, remaining
        index, _, window_ms, limit = tightest
        reset = resets[index]
        if reset <= 0 and charged > 0:
            reset = window_ms  # this request's own charge is the oldest in the window
        limit_name, remaining_name, reset_name = _NAMES[kind]
        headers[limit_name] = limit
        headers[remaining_name] = str(least)
        headers[reset_name] = go_duration(reset)
    return headers
