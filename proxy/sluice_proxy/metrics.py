"""Every Prometheus collector the proxy exports, declared once.

GenAI histograms follow the OpenTelemetry GenAI semantic conventions (names and bucket
boundaries) as exported to Prometheus; everything else is ``sluice_``-prefixed.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from . import build

REGISTRY = CollectorRegistry(auto_describe=True)

_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model")
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)

REQUEST_DURATION = Histogram(
    "gen_ai_server_request_duration_seconds",
    "Time to last byte of a model response.",
    _GENAI,
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Time from request to the first streamed token.",
    _GENAI,
    buckets=_TTFT_BUCKETS,
    registry=REGISTRY,
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "gen_ai_server_time_per_output_token_seconds",
    "Time per output token after the first.",
    _GENAI,
    buckets=_TPOT_BUCKETS,
    registry=REGISTRY,
)
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Tokens per response by type.",
    (*_GENAI, "gen_ai_token_type"),
    buckets=_TOKEN_BUCKETS,
    registry=REGISTRY,
)
REQUESTS = Counter(
    "sluice_requests", "Requests by HTTP status.", ("tenant", "model", "status"), registry=REGISTRY
)
TOKENS = Counter(
    "sluice_tokens", "Tokens by type.", ("tenant", "provider", "model", "type"), registry=REGISTRY
)
COST = Counter("sluice_cost_usd", "Spend in US dollars.", ("tenant", "provider", "model"), registry=REGISTRY)
UPSTREAM_ERRORS = Counter(
    "sluice_upstream_errors", "Failed upstream attempts.", ("provider", "reason"), registry=REGISTRY
)
FALLBACKS = Counter(
    "sluice_fallbacks",
    "Moves to a lower-priority backend.",
    ("model", "provider", "reason"),
    registry=REGISTRY,
)
RETRIES = Counter("sluice_retries", "Retries of the same backend.", ("provider",), registry=REGISTRY)
# multiprocess_mode only matters under --workers: how the workers' values combine.
BREAKER_STATE = Gauge(
    "sluice_circuit_breaker_state",
    "0 closed, 1 half-open, 2 open.",
    ("provider", "model"),
    registry=REGISTRY,
    multiprocess_mode="max",
)
RATELIMIT_REJECTIONS = Counter(
    "sluice_ratelimit_rejections", "Requests refused by a limit.", ("tenant", "limit"), registry=REGISTRY
)
BUDGET_USED = Gauge(
    "sluice_budget_used_ratio",
    "Share of the period's budget spent.",
    ("tenant",),
    registry=REGISTRY,
    multiprocess_mode="max",
)
CACHE_REQUESTS = Counter(
    "sluice_cache_requests", "Response cache look-ups.", ("model", "result"), registry=REGISTRY
)
LEASED = Counter(
    "sluice_ratelimit_leased",
    "Admissions Redis charged ahead of the requests that take them (redis.quotaLeases).",
    registry=REGISTRY,
)
LEASED_UNUSED = Counter(
    "sluice_ratelimit_leased_unused",
    "Leased admissions given back unused at the end of their second.",
    registry=REGISTRY,
)
REDIS_ERRORS = Counter("sluice_redis_errors", "Failed Redis calls.", ("operation",), registry=REGISTRY)
LIMITER_DEGRADED = Gauge(
    "sluice_limiter_degraded",
    "1 while Redis is unreachable and the local limiter serves.",
    registry=REGISTRY,
    multiprocess_mode="max",
)
CONFIG_RELOADS = Counter("sluice_config_reloads", "Configuration reloads.", ("result",), registry=REGISTRY)
CONFIG_RELOAD_DURATION = Histogram(
    "sluice_config_reload_duration_seconds",
    "Time to read, validate and compile a changed configuration, by result.",
    ("result",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
CONFIG_INFO = Gauge(
    "sluice_config_info",
    "1 for the loaded configuration's checksum.",
    ("checksum",),
    registry=REGISTRY,
    multiprocess_mode="max",
)
BUILD_INFO = Gauge(
    "sluice_build_info",
    "1, labelled with the proxy's version and whether it runs compiled (mypyc) or interpreted.",
    ("version", "compiled"),
    registry=REGISTRY,
    multiprocess_mode="max",
)
BUILD_INFO.labels(build.VERSION, str(build.COMPILED).lower()).set(1)
PRICING_UNKNOWN = Counter(
    "sluice_pricing_unknown", "Responses with no known price.", ("provider", "model"), registry=REGISTRY
)
INFLIGHT = Gauge(
    "sluice_inflight_requests", "Requests being served.", registry=REGISTRY, multiprocess_mode="livesum"
)
OVERHEAD = Histogram(
    "sluice_overhead_seconds",
    "Time the proxy itself adds before the upstream call.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
    registry=REGISTRY,
)


_MAX_SERIES = 10_000  # a bound against unbounded model names sent by clients
V = TypeVar("V")
C = TypeVar("C")
_SHARED = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
"""Under --workers every scrape reads every worker's files: buffered figures go there each turn."""


class _Buffered(Generic[C]):
    """Per-request figures kept in plain Python and written to their collectors in one go.

    Each ``prometheus_client`` update takes a lock and checks its arguments: over a dozen of
    them per request cost more than the rest of the metrics. A buffer is written when the
    registry is read (a scrape) or, under --workers, once per event-loop turn.
    """

    __slots__ = ("_child", "dirty")

    def __init__(self, child: C) -> None:
        self._child = child
        self.dirty = False

    def write(self) -> None:
        raise NotImplementedError


_dirty: list[_Buffered[Any]] = []
_write_scheduled = [False]


def _touched(buffered: _Buffered[Any]) -> None:
    """Keep ``buffered`` for the next write; callers check ``dirty`` first (a call less)."""
    buffered.dirty = True
    _dirty.append(buffered)
    if _SHARED and not _write_scheduled[0]:
        _write_scheduled[0] = True
        try:
            asyncio.get_running_loop().call_soon(_write_buffered)
        except RuntimeError:  # no event loop: at once
            _write_buffered()


def _write_buffered() -> None:
    _write_scheduled[0] = False
    dirty = _dirty[:]
    _dirty.clear()
    for buffered in dirty:
        buffered.dirty = False
        buffered.write()


class _Tally(_Buffered[Histogram]):
    """Observations of one histogram child since it was last written."""

    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, child: Histogram) -> None:
        super().__init__(child)
        # prometheus_client has no call that adds many observations; its bucket and sum values do.
        self._bounds: list[float] = child._upper_bounds
        self.counts = [0] * len(self._bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1  # the first bucket with value <= bound
        self.total += value
        if not self.dirty:
            _touched(self)

    def write(self) -> None:
        counts, buckets = self.counts, self._child._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
                counts[index] = 0
        self._child._sum.inc(self.total)
        self.total = 0.0


class _Count(_Buffered[Counter]):
    """What one counter child was incremented by since it was last written."""

    __slots__ = ("amount",)

    def __init__(self, child: Counter) -> None:
        super().__init__(child)
        self.amount = 0.0

    def inc(self, amount: float = 1) -> None:
        self.amount += amount
        if not self.dirty:
            _touched(self)

    def write(self) -> None:
        self._child.inc(self.amount)
        self.amount = 0.0


class _Level(_Buffered[Gauge]):
    """The latest value of one gauge child."""

    __slots__ = ("value",)

    def __init__(self, child: Gauge) -> None:
        super().__init__(child)
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value
        if not self.dirty:
            _touched(self)

    def add(self, amount: float) -> None:
        self.value += amount
        if not self.dirty:
            _touched(self)

    def write(self) -> None:
        self._child.set(self.value)


def _child(cache: dict[tuple[str, ...], V], key: tuple[str, ...], make: Callable[..., V]) -> V:
    """``make(*key)``, made once per key: ``labels()`` takes a lock and hashes its arguments."""
    child = cache.get(key)
    if child is None:
        if len(cache) >= _MAX_SERIES:
            cache.clear()  # a dropped buffer still waiting is written all the same: _dirty holds it
        child = cache[key] = make(*key)
    return child


_request_counts: dict[tuple[str, ...], _Count] = {}


def count_request(tenant: str, model: str, status: int) -> None:
    """``sluice_requests_total``."""
    key = (tenant, model, str(status))
    _child(_request_counts, key, lambda *labels: _Count(REQUESTS.labels(*labels))).inc()


_overhead = _Tally(OVERHEAD)
inflight = _Level(INFLIGHT)
"""``sluice_inflight_requests``: ``add(1)`` when a request starts, ``add(-1)`` when it ends."""


def observe_overhead(seconds: float) -> None:
    """``sluice_overhead_seconds``."""
    _overhead.observe(seconds)


_current_checksum: list[str] = []


def set_config_checksum(checksum: str) -> None:
    for previous in _current_checksum:
        CONFIG_INFO.labels(previous).set(0)  # under --workers a removed series would linger at 1
        CONFIG_INFO.remove(previous)
    _current_checksum[:] = [checksum]
    CONFIG_INFO.labels(checksum).set(1)


def exposition() -> bytes:
    """The Prometheus text format; under --workers, aggregated over every worker."""
    _write_buffered()
    if _SHARED:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class _ResponseSeries:
    """The buffered children one (operation, provider, tenant, models) combination writes to."""

    __slots__ = ("cost", "duration", "pricing_unknown", "tokens", "tpot", "ttft", "usage")

    def __init__(
        self,
        operation: str,
        provider_type: str,
        provider: str,
        tenant: str,
        request_model: str,
        response_model: str,
    ) -> None:
        genai = (operation, provider_type, request_model, response_model)
        self.duration = _Tally(REQUEST_DURATION.labels(*genai))
        self.ttft = _Tally(TIME_TO_FIRST_TOKEN.labels(*genai))
        self.tpot = _Tally(TIME_PER_OUTPUT_TOKEN.labels(*genai))
        kinds = ("input", "output", "cached_input")
        self.usage = tuple(_Tally(TOKEN_USAGE.labels(*genai, kind)) for kind in kinds)
        self.tokens = tuple(_Count(TOKENS.labels(tenant, provider, response_model, kind)) for kind in kinds)
        self.cost = _Count(COST.labels(tenant, provider, response_model))
        self.pricing_unknown = _Count(PRICING_UNKNOWN.labels(provider, response_model))


_series: dict[tuple[str, ...], _ResponseSeries] = {}
_budget_used: dict[tuple[str, ...], _Level] = {}


def set_budget_used(tenant: str, fraction: float) -> None:
    """``sluice_budget_used_ratio`` of one tenant."""
    _child(_budget_used, (tenant,), lambda name: _Level(BUDGET_USED.labels(name))).set(fraction)


def observe_response(
    *,
    operation: str,
    provider_type: str,
    provider: str,
    tenant: str,
    request_model: str,
    response_model: str,
    duration: float,
    time_to_first_token: float | None,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int,
    cost_usd: float | None,
) -> None:
    """Record one finished model response (streamed or not); ``cost_usd`` None: the price is unknown."""
    key = (operation, provider_type, provider, tenant, request_model, response_model)
    series = _child(_series, key, _ResponseSeries)
    series.duration.observe(duration)
    if time_to_first_token is not None:
        series.ttft.observe(time_to_first_token)
        if output_tokens > 1:
            series.tpot.observe((duration - time_to_first_token) / (output_tokens - 1))
    usage, tokens = series.usage, series.tokens
    usage[0].observe(input_tokens)
    tokens[0].inc(input_tokens)
    usage[1].observe(output_tokens)
    tokens[1].inc(output_tokens)
    if cached_input_tokens:  # most answers have none: no zero observation for them
        usage[2].observe(cached_input_tokens)
        tokens[2].inc(cached_input_tokens)
    if cost_usd is None:
        series.pricing_unknown.inc()  # never a silent 0
    elif cost_usd:
        series.cost.inc(cost_usd)
