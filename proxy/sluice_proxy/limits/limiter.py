"""Admission and settlement of requests against rate limits, concurrency and budgets.

Algorithms (the same in Redis Lua and in-process):

* **Requests and tokens: sliding windows of one-second buckets.** Per limit, a hash of at
  most 60 per-second amounts plus their running total; a request is admitted while the
  total charged in the last 60 seconds is under the limit. Exact to the second (no
  fixed-window double burst at a minute boundary), and memory O(60) whatever the limit.
  A request charges 1 request and, since its tokens are only known after the response,
  the caller's token estimate (so a burst cannot all slip in before any usage lands);
  settlement reconciles that with the provider's usage: extra tokens are charged at
  settlement time, an over-reservation is refunded where it was charged.
* **Concurrency: leases.** A sorted set of admission ids scored by lease end; settlement
  removes the id, and a lease frees itself after ``LEASE_MS`` if its replica died.

Every check of one request runs in one Lua script (one round trip, all-or-nothing); the
requests of one tenant and route in the same event-loop tick share the script call, which
decides them in order as separate calls would. A busy tenant and route are admitted against
quota leased ahead of them by the same script (:mod:`.leases`, ``redis.quotaLeases``), so most
of their requests wait for no round trip.
Redis calls are bounded by ``redis.timeout``; on a failure the limiter turns *degraded*:
``failMode: open`` serves from the per-replica local store, ``closed`` answers 503, and a
background PING probe restores Redis when it answers again. Settlements made while
degraded are queued and replayed to Redis on recovery, so usage and spend are not lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import os
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import metrics
from ..config import parse_duration
from ..config.schema import RedisSettings
from ..errors import BudgetExceededError, RateLimitError, ServiceUnavailableError
from ..providers.base import Usage
from ..runtime import RuntimeRoute, RuntimeTenant
from ..tokens import estimate_prompt_tokens
from ..turns import AfterTurn
from .batch import RedisClient
from .checks import Check, Kind, Plan, Planner, tenant_checks
from .headers import go_duration, rate_headers, retry_after
from .keys import MICRO, USAGE_PERIODS, Period, current_periods, period_end, usage_key_in
from .leases import Leases
from .local_store import LocalStore
from .pipe import RedisError
from .redis_store import RedisStore, Spends
from .report import usage_report
from .store import Decision, Settlement, Store

LOG = logging.getLogger("sluice.limits")
PROBE_INTERVAL = 0.5
MAX_PENDING = 100_000
"""Settlements kept for replay while Redis is down; beyond this the oldest are dropped and logged."""
TIMEOUTS_BEFORE_DEGRADED = 5
"""Consecutive timed-out Redis calls that switch the limiter to degraded mode; any other
Redis error (refused, reset) switches at once."""
_ADJECTIVES: dict[Period, str] = {"day": "daily", "month": "monthly"}
GATHER_SECONDS = 0.005
"""How long the settlements of requests taken from a lease gather before they go to Redis in one
write: per event-loop turn, a write and a read cost more than the rest of a request's limits."""


@dataclass(slots=True, eq=False, init=False)  # its own __init__: see setup.py
class Admission:
    """One admitted request; settle or release it exactly once."""

    id: str
    plan: Plan
    reserved_tokens: int
    admitted_ms: int
    headers: dict[str, str]
    """``x-ratelimit-*`` for the successful response."""
    store: Store
    leased: bool
    """Taken from a lease (:mod:`.leases`) rather than decided for this request alone."""
    settled: bool

    def __init__(
        self,
        id: str,
        plan: Plan,
        reserved_tokens: int,
        admitted_ms: int,
        headers: dict[str, str],
        store: Store,
        leased: bool = False,
    ) -> None:
        self.id = id
        self.plan = plan
        self.reserved_tokens = reserved_tokens
        self.admitted_ms = admitted_ms
        self.headers = headers
        self.store = store
        self.leased = leased
        self.settled = False


class Limiter:
    def __init__(self, settings: RedisSettings | None) -> None:
        self.settings = settings
        self.prefix = settings.key_prefix if settings else "sluice"
        self._planner = Planner(self.prefix)
        self.timeout = parse_duration(settings.timeout) if settings else 0.0
        self.fail_open = settings is None or settings.fail_mode == "open"
        # The client's per-tick write carries the redis.timeout deadline for every call in it.
        self.redis = RedisClient(settings.url, self.timeout) if settings is not None else None
        self._redis_store = RedisStore(self.redis) if self.redis is not None else None
        self._local = LocalStore()
        self._degraded = False
        self._timeouts = 0
        """Consecutive Redis timeouts; degraded mode starts at TIMEOUTS_BEFORE_DEGRADED."""
        self._probe: asyncio.Task[None] | None = None
        self._pending: deque[Settlement] = deque()
        self._background: set[asyncio.Task[None]] = set()
        """Settlements that need a task: made locally, or while Redis is away."""
        self._settling = 0
        """Settlements sent to Redis and not answered yet."""
        self._all_settled: asyncio.Future[None] | None = None
        """Resolved when ``_settling`` falls to 0 while ``close`` waits for it."""
        self._unsettled = AfterTurn(self._start_settling, "settling an admission")
        """Settlements made this event-loop turn, started once its responses are written."""
        self._gathered = AfterTurn(self._start_settling, "settling an admission", GATHER_SECONDS)
        """Settlements of leased requests, started together every few milliseconds."""
        # Admission ids are concurrency leases in shared sorted sets: unique across replicas.
        self._id_prefix = os.urandom(6).hex()
        self._ids = itertools.count(1)
        self._leases: Leases | None = None
        if self._redis_store is not None and settings is not None and settings.quota_leases:
            self._leases = Leases(self._redis_store, self._new_id, self._give_back, self._fail)

    def _new_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids):x}"

    @classmethod
    async def start(cls, settings: RedisSettings | None) -> Limiter:
        """A limiter on Redis (``settings``) or in-process (None); starts degraded if Redis is down."""
        limiter = cls(settings)
        if settings is None:
            return limiter
        try:
            async with asyncio.timeout(max(limiter.timeout, 1.0)):  # the first connect may be slower
                await limiter._ping()
        except (RedisError, OSError, TimeoutError) as error:
            limiter._fail("ping", error)
        else:
            metrics.LIMITER_DEGRADED.set(0)
        return limiter

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and decisions are local (or refused)."""
        return self._degraded

    def tokens_to_reserve(self, tenant: RuntimeTenant, route: RuntimeRoute, body: dict[str, Any]) -> int:
        """What ``admit`` should reserve for a chat request: 0 unless a token limit applies.

        The prompt's estimate plus the output the request allows (``max_completion_tokens`` or
        ``max_tokens``), so concurrent requests cannot overrun a token limit before their usage lands.
        """
        if not self._planner.plan(tenant, route).wants_tokens:
            return 0
        output = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        return estimate_prompt_tokens(body) + (output if isinstance(output, int) else 0)

    async def admit(self, tenant: RuntimeTenant, route: RuntimeRoute, *, estimated_tokens: int) -> Admission:
        """Admit or raise RateLimitError, BudgetExceededError or ServiceUnavailableError."""
        plan = self._planner.plan(tenant, route)
        checks, windows = plan.current()  # both taken before the wait
        redis_store, decision, leases = self._redis_store, None, self._leases
        store: Store = self._local
        if redis_store is not None and not self._degraded:
            if leases is not None:
                placeholder = leases.take(plan, estimated_tokens)
                if placeholder is None and (coming := leases.coming(plan, estimated_tokens)) is not None:
                    placeholder = await coming
                if placeholder is not None:
                    reserved, decision = placeholder.tokens, placeholder.decision
                    headers = rate_headers(windows, decision, reserved)
                    # Positional: keywords cost a lookup each, once per request.
                    return Admission(
                        placeholder.id, plan, reserved, decision.now_ms, headers, redis_store, True
                    )
            id = self._new_id()
            try:  # awaited here, not in a helper coroutine: one frame less on every request
                decision = await redis_store.admit(checks, id, estimated_tokens)
                store, self._timeouts = redis_store, 0
            except (RedisError, OSError, TimeoutError) as error:
                self._fail("admit", error)
            else:
                if leases is not None:
                    leases.saw(plan, decision)
        else:
            id = self._new_id()
        if decision is None:
            decision = await self._admit_locally(checks, id, estimated_tokens)
        headers = rate_headers(windows, decision, estimated_tokens)
        if decision.rejected is not None:
            raise self._rejection(tenant, decision, decision.rejected, headers)
        return Admission(id, plan, estimated_tokens, decision.now_ms, headers, store)

    async def _admit_locally(self, checks: list[Check], id: str, reserved: int) -> Decision:
        """Without Redis: the local store decides (failMode open), or the request is refused."""
        if not self.fail_open:
            raise ServiceUnavailableError(
                "the rate limiter cannot reach Redis and redis.failMode is 'closed'; retry shortly",
                headers={"Retry-After": "1"},
            )
        return await self._local.admit(checks, id, reserved)

    def _rejection(
        self, tenant: RuntimeTenant, decision: Decision, check: Check, headers: dict[str, str]
    ) -> RateLimitError:
        index = decision.rejected_index
        used, reset = decision.used[index], decision.reset_ms[index]
        metrics.RATELIMIT_REJECTIONS.labels(tenant.name, check.label).inc()
        wait = 1000 if check.kind is Kind.CONCURRENCY else reset
        headers = {**headers, "Retry-After": retry_after(wait)}
        if check.kind is Kind.BUDGET:
            budget = tenant.spec.budget
            assert budget is not None
            resets = period_end(budget.period, datetime.now(UTC))
            return BudgetExceededError(
                f"tenant '{tenant.name}' has spent ${used / MICRO:.2f} of its {_ADJECTIVES[budget.period]} budget "
                f"of ${budget.usd:.2f} (tenants[].budget.usd); it resets at {resets:%Y-%m-%dT%H:%M:%SZ}",
                headers=headers,
            )
        scope = check.label.removesuffix(check.kind_word)
        what = {"": f"tenant '{tenant.name}'", "model_": f"tenant '{tenant.name}' on this model"}.get(
            scope, "this model for all tenants"
        )
        unit = "concurrent requests" if check.kind is Kind.CONCURRENCY else f"{check.kind_word} per minute"
        return RateLimitError(
            f"rate limit reached for {what}: {used} of {check.limit} {unit} in use; "
            f"retry in {go_duration(wait)}",
            headers=headers,
        )

    async def settle(self, admission: Admission, usage: Usage | None, cost_usd: float | None) -> None:
        """Charge real usage and spend, free concurrency slots; later calls do nothing."""
        if admission.settled:
            return
        admission.settled = True
        settled = asyncio.get_running_loop().create_future()
        self._start_settling((admission, usage, cost_usd), settled)
        await settled

    def settle_soon(self, admission: Admission, usage: Usage | None, cost_usd: float | None) -> None:
        """``settle`` in the background, after this event-loop turn; ``close`` waits for it.

        The turn writes the response first: settling is off the request's path. It still
        reaches Redis before any later request of the same client is read, unless the request
        was taken from a lease while its concurrency limits have room to spare
        (``Lease.roomy``): then it waits up to ``GATHER_SECONDS`` to go with others in one
        write, since the client's next request takes a placeholder and a slot of its own.
        """
        if admission.settled:
            return
        admission.settled = True
        unsettled = (admission, usage, cost_usd)
        lease = admission.plan.lease  # its room is worked out once per decision (Lease.learn)
        if admission.leased and lease is not None and lease.roomy:
            self._gathered.add(unsettled)
        else:
            self._unsettled.add(unsettled)

    def _start_settling(
        self,
        unsettled: tuple[Admission, Usage | None, float | None],
        done: asyncio.Future[None] | None = None,
    ) -> None:
        """Settle in the background; ``done``, if given, is resolved when it is over."""
        admission, usage, cost_usd = unsettled
        settlement = self._settlement(admission, usage, cost_usd)
        if admission.store is self._redis_store and self._redis_store is not None and not self._degraded:
            self._send(admission.plan.tenant, settlement, done)
            return
        if self._redis_store is None:  # in-process only: nothing to wait for
            if spends := self._local.settle_now(settlement):
                self._watch_budget(admission.plan.tenant, spends, settlement.spend_micro)
            if done is not None:
                done.set_result(None)
            return
        task = asyncio.get_running_loop().create_task(self._finish(admission, settlement))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if done is not None:
            task.add_done_callback(lambda _: done.set_result(None))

    def _send(self, tenant: RuntimeTenant, settlement: Settlement, done: asyncio.Future[None] | None) -> None:
        """Settle on Redis. No task: the reply itself finishes it (_settled)."""
        assert self._redis_store is not None
        self._redis_store.settle_then(settlement, functools.partial(self._settled, tenant, settlement, done))
        self._settling += 1  # once it is on its way: no reply comes before this turn ends

    def _settled(
        self, tenant: RuntimeTenant, settlement: Settlement, done: asyncio.Future[None] | None, spends: Spends
    ) -> None:
        try:
            if isinstance(spends, RedisError | OSError | TimeoutError):
                self._fail("settle", spends)
                self._keep(settlement)
            elif isinstance(spends, BaseException):
                LOG.error("settling admission %s failed", settlement.id, exc_info=spends)
            elif spends:  # a give-back (leases) adds to no usage hash
                self._watch_budget(tenant, spends, settlement.spend_micro)
        finally:  # whatever happened above, nobody may wait for this settlement forever
            self._settling -= 1
            if done is not None and not done.done():
                done.set_result(None)
            if not self._settling and self._all_settled is not None and not self._all_settled.done():
                self._all_settled.set_result(None)

    def _settlement(self, admission: Admission, usage: Usage | None, cost_usd: float | None) -> Settlement:
        usage = usage or Usage()
        plan = admission.plan
        return Settlement(  # positional: keywords cost a lookup each, once per request
            admission.id,
            admission.admitted_ms,
            usage.total_tokens - admission.reserved_tokens,  # delta_tokens
            plan.token_keys,
            plan.slot_keys,
            plan.usage_keys(),
            round((cost_usd or 0.0) * MICRO),  # spend_micro
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
        )

    async def _finish(self, admission: Admission, settlement: Settlement) -> None:
        if admission.store is self._local:
            spends = self._local.settle_now(settlement)
            if self._redis_store is not None:
                # Admitted locally during an outage: the shared usage totals still need it.
                await self._settle_shared(
                    dataclasses.replace(
                        settlement, admitted_ms=0, delta_tokens=0, token_keys=[], slot_keys=[]
                    )
                )
        else:
            spends = await self._settle_shared(settlement)
        if spends:
            self._watch_budget(admission.plan.tenant, spends, settlement.spend_micro)

    def _give_back(self, plan: Plan, settlements: list[Settlement]) -> None:
        """Send the settlements that return unused leased quota; kept for replay while Redis is away."""
        for settlement in settlements:
            if self._degraded:
                self._keep(settlement)
            else:
                self._send(plan.tenant, settlement, None)

    def release(self, admission: Admission) -> None:
        """Free an admission that produced no usage (failed before any token was served)."""
        if not admission.settled:  # every request calls this once it is done: settled is the rule
            self.settle_soon(admission, None, 0.0)

    async def _settle_shared(self, settlement: Settlement) -> list[int]:
        assert self._redis_store is not None
        if not self._degraded:
            try:
                return await self._redis_store.settle(settlement)
            except (RedisError, OSError, TimeoutError) as error:
                self._fail("settle", error)
        self._keep(settlement)
        return []

    def _keep(self, settlement: Settlement) -> None:
        if len(self._pending) >= MAX_PENDING:
            dropped = self._pending.popleft()
            LOG.error("usage of admission %s dropped: %d settlements wait for Redis", dropped.id, MAX_PENDING)
        self._pending.append(settlement)

    def _watch_budget(self, tenant: RuntimeTenant, spends: list[int], spent_now: int) -> None:
        """``spends``: the tenant's new spend this day and this month (micro-dollars)."""
        budget = tenant.spec.budget
        if budget is None or budget.usd <= 0:
            return
        limit = budget.usd * MICRO
        spend = spends[USAGE_PERIODS.index(budget.period)]
        metrics.set_budget_used(tenant.name, spend / limit)
        if budget.alert_percent is not None:
            threshold = limit * budget.alert_percent / 100
            # Only the settlement that crosses the threshold logs: one line across replicas.
            if spend - spent_now < threshold <= spend:
                LOG.warning(
                    "tenant '%s' has spent %.0f%% of its %s budget of $%.2f",
                    tenant.name,
                    100 * spend / limit,
                    _ADJECTIVES[budget.period],
                    budget.usd,
                )

    def _fail(self, operation: str, error: BaseException) -> None:
        metrics.REDIS_ERRORS.labels(operation).inc()
        if self._degraded:
            return
        if isinstance(error, TimeoutError):
            # A timeout also counts the time a call waited on a busy event loop, so one alone
            # does not prove Redis is away: that call falls back, the limiter stays shared.
            self._timeouts += 1
            if self._timeouts < TIMEOUTS_BEFORE_DEGRADED:
                return
        self._degraded = True
        metrics.LIMITER_DEGRADED.set(1)
        mode = "serving from the local limiter" if self.fail_open else "refusing requests (failMode closed)"
        LOG.warning(
            "Redis %s failed (%s: %s); %s until it answers", operation, type(error).__name__, error, mode
        )
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._recover())

    async def _ping(self) -> None:
        assert self.redis is not None
        await self.redis.command("PING")

    async def _recover(self) -> None:
        """Probe Redis until it answers, replay queued settlements, then leave degraded mode."""
        assert self._redis_store is not None
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                async with asyncio.timeout(max(self.timeout, 0.2)):
                    await self._ping()
                while self._pending:
                    async with asyncio.timeout(max(self.timeout, 0.2)):
                        await self._redis_store.settle(self._pending[0])
                    self._pending.popleft()
            except (RedisError, OSError, TimeoutError):
                metrics.REDIS_ERRORS.labels("probe").inc()
                continue
            self._degraded = False
            metrics.LIMITER_DEGRADED.set(0)
            LOG.warning("Redis answers again; the shared limiter is back")
            return

    async def snapshot(self, tenant: RuntimeTenant) -> dict[str, Any]:
        """The tenant's usage this day and month, its budget and its limits, for GET /v1/usage."""
        now = datetime.now(UTC)
        periods = current_periods()
        checks = tenant_checks(self.prefix, tenant, None, periods, int(now.timestamp() * 1000))
        keys = [usage_key_in(self.prefix, tenant.name, p, periods[p].id) for p in USAGE_PERIODS]
        store: Store = self._local
        if self._redis_store is not None and not self._degraded:
            store = self._redis_store
        try:
            async with asyncio.timeout(self.timeout or None):
                decision = await store.admit(checks, "snapshot", 0, dry=True)
                usage = await store.read_usage(keys)
        except (RedisError, OSError, TimeoutError) as error:
            self._fail("snapshot", error)
            raise ServiceUnavailableError(
                "usage is unavailable while Redis does not answer; retry shortly"
            ) from None
        return usage_report(
            tenant, now, checks, decision, dict(zip(USAGE_PERIODS, usage, strict=True)), self._degraded
        )

    async def close(self) -> None:
        """Give back leased quota, wait for background settlements, stop probing, close the connection."""
        if self._leases is not None:
            await self._leases.close()
        self._unsettled.drain()
        self._gathered.drain()
        if self._settling:
            self._all_settled = asyncio.get_running_loop().create_future()
            await self._all_settled
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._probe is not None:
            self._probe.cancel()
        if self.redis is not None:
            self.redis.close()
