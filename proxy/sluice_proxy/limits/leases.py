"""Quota leased ahead of requests: a busy tenant and route are admitted without waiting for Redis.

A lease is a batch of placeholder admissions that the admission script decides exactly as it
decides requests: each charges one request, a token reservation and a concurrency slot to every
limit of the tenant and route, and needs room in the budget. A replica holds them for its next
requests of that tenant and route; a request that finds one takes it and goes on at once, and
the next batch is asked for in the background while half of this one is left. A request taken
from a lease is settled like any other, so its real tokens, spend and slot land in Redis as before.

Nothing is admitted beyond a limit: a placeholder is charged in Redis before it is used. What a
lease costs is fairness between replicas: quota a replica holds and does not use is refused to
the others until it is given back. So a placeholder is given back unused at the end of the Redis
second it was charged in (a charge must stay in its own second's bucket for the sliding windows
to stay exact to the second), a batch takes at most a quarter of what any limit has left, and a
tenant and route are leased only while this replica sees ``MIN_DEMAND`` of their requests a
second and the limits have room for ``MIN_LEASE`` placeholders: small limits and quiet tenants
stay exact per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Final

from .. import metrics
from .checks import Kind, Plan
from .pipe import RedisError
from .redis_store import RedisStore
from .store import Decision, Settlement

LOG = logging.getLogger("sluice.limits")
MIN_LEASE: Final = 4
"""The smallest batch worth asking for; limits without room for it are checked per request."""
MIN_DEMAND: Final = 2 * MIN_LEASE
"""Requests a second (of one tenant and route, on this replica) below which nothing is leased:
a batch is half a second of demand."""
MAX_LEASE: Final = 64
SHARE: Final = 4
"""A batch takes at most 1/SHARE of what any limit has left."""
ROOMY: Final = SHARE * MAX_LEASE
"""Free slots every concurrency limit must have for a leased request's settlement to wait
(``Limiter.settle_soon``): a few finished requests' slots held a few ms longer then refuse nobody."""
MARGIN: Final = 0.01
"""Seconds before its Redis second ends that a placeholder stops being used: the local clock
is read once per event-loop turn, and a late use would count in the bucket before its own."""
_ANY: Final = 1 << 62
"""Tokens a batch not yet sized will cover: it reserves the most a request wanted since the last one."""
_NO_KEYS: Final[list[str]] = []
_NO_USAGE: Final[list[tuple[str, int]]] = []
"""Give-backs add to no usage hash; shared, because the store caches commands by the lists' identity."""


class Placeholder:
    """One admission decided ahead of the request that will take it."""

    __slots__ = ("deadline", "decision", "id", "tokens")

    def __init__(self, id: str, decision: Decision, tokens: int, deadline: float) -> None:
        self.id = id
        self.decision = decision
        self.tokens = tokens
        """The token reservation it charged: a request that wants more is admitted by Redis."""
        self.deadline = deadline
        """Event-loop time after which it is given back instead of used."""


class Lease:
    """The placeholders held for one tenant and route, and how often their requests come."""

    __slots__ = (
        "asking",
        "batch_tokens",
        "count",
        "deadline",
        "decision",
        "held",
        "last_count",
        "plan",
        "roomy",
        "second",
        "size",
        "timer",
        "tokens",
        "waiters",
    )

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.held: deque[Placeholder] = deque()
        self.asking = False
        """A batch is on its way (or will be asked for at the end of this turn)."""
        self.batch_tokens = 0
        """The reservation of the batch on its way."""
        self.waiters: deque[asyncio.Future[Placeholder | None]] = deque()
        """Requests that found nothing held while a batch was on its way: they get the batch first."""
        self.size = 0
        """How many placeholders the last batch asked for."""
        self.tokens = 0
        """The largest reservation a request wanted since the last batch was asked for."""
        self.decision: Decision | None = None
        """The latest decision the store made for this plan: what the limits have left."""
        self.roomy = False
        """Whether every concurrency limit had ``ROOMY`` slots free at that decision."""
        self.deadline = 0.0
        """The newest batch's deadline: around it a batch would live a few milliseconds, so none is asked."""
        self.timer: asyncio.TimerHandle | None = None
        self.second = 0
        self.count = 0
        self.last_count = 0

    def learn(self, decision: Decision) -> None:
        """Keep the store's latest decision, and what it says of the concurrency limits' room."""
        self.decision = decision
        checks, _ = self.plan.current()
        self.roomy = all(
            check.kind is not Kind.CONCURRENCY or check.limit - used >= ROOMY
            for check, used in zip(checks, decision.used, strict=True)
        )

    def arrived(self, now: float) -> None:
        """Count one more request."""
        self.demand(now)
        self.count += 1

    def demand(self, now: float) -> int:
        """Requests a second: this second's so far or the last one's, whichever is more."""
        second = int(now)
        if second != self.second:
            self.last_count = self.count if second == self.second + 1 else 0
            self.second, self.count = second, 0
        return max(self.count, self.last_count)


class Leases:
    """Takes placeholders for requests, asks for batches, and gives back what was not used."""

    def __init__(
        self,
        store: RedisStore,
        new_id: Callable[[], str],
        give_back: Callable[[Plan, list[Settlement]], None],
        fail: Callable[[str, BaseException], None],
    ) -> None:
        self._store = store
        self._new_id = new_id
        self._give_back = give_back
        """Sends settlements to Redis (or keeps them for replay while it is away)."""
        self._fail = fail
        self._holding: set[Lease] = set()
        self._asks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def take(self, plan: Plan, tokens: int) -> Placeholder | None:
        """A placeholder for a request that reserves ``tokens``, or None: ask Redis, then call :meth:`saw`."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()  # once: each call of it is a getpid
        now = loop.time()
        lease = plan.lease
        if lease is None:
            lease = plan.lease = Lease(plan)
        lease.arrived(now)
        if tokens > lease.tokens:
            lease.tokens = tokens
        held = lease.held
        if held and held[0].deadline <= now:
            self._expire(lease)
        if not held or held[0].tokens < tokens:
            return None
        placeholder = held.popleft()
        if not lease.asking and len(held) <= lease.size // 2:
            self._ask(lease, now)
        return placeholder

    def coming(self, plan: Plan, tokens: int) -> asyncio.Future[Placeholder | None] | None:
        """After :meth:`take` found nothing: a placeholder of the batch on its way (None if it
        falls short), or None at once when no batch that covers ``tokens`` is coming.

        Waiting for it costs the request no more than asking Redis itself, and a request sent
        meanwhile would be decided after the batch: refused, near a limit, for quota its own
        replica is about to hold.
        """
        lease = plan.lease
        if lease is None or not lease.asking or tokens > lease.batch_tokens:
            return None
        assert self._loop is not None
        waiter: asyncio.Future[Placeholder | None] = self._loop.create_future()
        lease.waiters.append(waiter)
        return waiter

    def saw(self, plan: Plan, decision: Decision) -> None:
        """Redis decided one of ``plan``'s requests (after :meth:`take` found nothing): lease if busy."""
        lease = plan.lease
        if lease is None:
            return
        lease.learn(decision)
        if decision.rejected is None and not lease.asking and not lease.held:
            # Sized once this turn's other decisions are in too: on what the limits have left now.
            lease.asking, lease.batch_tokens = True, _ANY
            assert self._loop is not None
            self._loop.call_soon(self._ask_after_turn, lease)

    def _ask_after_turn(self, lease: Lease) -> None:
        lease.asking = False
        assert self._loop is not None
        self._ask(lease, self._loop.time())
        if not lease.asking:  # nothing asked for after all: the requests waiting ask Redis themselves
            _hand_out(lease, [])

    def _size(self, lease: Lease, now: float, tokens: int) -> int:
        """How many placeholders to ask for: about half a second of demand, within every limit's share."""
        size = min(MAX_LEASE, lease.demand(now) // 2)
        decision = lease.decision
        if size < MIN_LEASE or decision is None:
            return 0
        checks, _ = lease.plan.current()
        for index, check in enumerate(checks):
            room = check.limit - decision.used[index]
            kind = check.kind
            if kind is Kind.BUDGET:
                if room <= 0:
                    return 0
            elif kind is Kind.TOKENS:
                if tokens > 0:
                    size = min(size, room // (SHARE * tokens))
            else:
                size = min(size, room // SHARE)
        return size if size >= MIN_LEASE else 0

    def _ask(self, lease: Lease, now: float) -> None:
        """Ask for a batch, unless the Redis second is about to end: wait for the next one then."""
        if lease.deadline - MARGIN <= now < lease.deadline + 2 * MARGIN:
            return
        self._start(lease, now)

    def _start(self, lease: Lease, now: float) -> None:
        if self._closed:
            return
        tokens = lease.tokens
        size = self._size(lease, now, tokens)
        if not size:
            return
        lease.asking, lease.size, lease.tokens, lease.batch_tokens = True, size, 0, tokens
        assert self._loop is not None
        task = self._loop.create_task(self._fetch(lease, size, tokens, now))
        self._asks.add(task)
        task.add_done_callback(self._asks.discard)

    async def _fetch(self, lease: Lease, size: int, tokens: int, sent: float) -> None:
        plan = lease.plan
        checks, _ = plan.current()
        ids = [self._new_id() for _ in range(size)]
        try:
            outcomes = await asyncio.gather(
                *(self._store.admit(checks, id, tokens) for id in ids), return_exceptions=True
            )
        finally:
            lease.asking = False
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        if failure is not None:
            if not isinstance(failure, RedisError | OSError | TimeoutError):
                LOG.error("leasing quota failed", exc_info=failure)
            else:
                self._fail("lease", failure)
            # Whether Redis charged them is unknown. An id names its slot exactly, so slots are
            # freed; a window charge cannot be told from another's, so it stays (on the safe side).
            if plan.slot_keys:
                self._give_back(
                    plan, [Settlement(id, 0, 0, _NO_KEYS, plan.slot_keys, _NO_USAGE) for id in ids]
                )
            _hand_out(lease, [])
            return
        decisions: list[Decision] = [o for o in outcomes if isinstance(o, Decision)]
        lease.learn(decisions[-1])
        # Redis's clock read this second after ``sent``: its end is no earlier than this.
        deadline = sent + (1000 - decisions[0].now_ms % 1000) / 1000 - MARGIN
        granted = [
            Placeholder(id, decision, tokens, deadline)
            for id, decision in zip(ids, decisions, strict=True)
            if decision.rejected is None
        ]
        metrics.LEASED.inc(len(granted))
        granted = _hand_out(lease, granted)
        if not granted:
            return
        lease.deadline = deadline
        lease.held.extend(granted)
        if self._closed:
            self._expire(lease, everything=True)
            return
        self._holding.add(lease)
        if lease.timer is not None:  # a renewal's, or the deadline of placeholders held before
            lease.timer.cancel()
        assert self._loop is not None
        lease.timer = self._loop.call_at(lease.held[0].deadline, self._on_deadline, lease)

    def _on_deadline(self, lease: Lease) -> None:
        """The oldest placeholders' second is over: give them back and, while busy, lease anew."""
        lease.timer = None
        self._expire(lease)
        assert self._loop is not None
        now = self._loop.time()
        if lease.held:
            lease.timer = self._loop.call_at(lease.held[0].deadline, self._on_deadline, lease)
        elif not lease.asking and lease.demand(now) >= MIN_DEMAND:
            # Just into the next Redis second, so that the new batch lives through most of it.
            lease.timer = self._loop.call_at(lease.deadline + 2 * MARGIN, self._renew, lease)

    def _renew(self, lease: Lease) -> None:
        lease.timer = None
        if not lease.held and not lease.asking:
            assert self._loop is not None
            self._start(lease, self._loop.time())

    def _expire(self, lease: Lease, *, everything: bool = False) -> None:
        """Give back the placeholders past their deadline (all of them with ``everything``)."""
        held, expired = lease.held, []
        assert self._loop is not None
        now = self._loop.time()
        while held and (everything or held[0].deadline <= now):
            expired.append(held.popleft())
        if not held:
            self._holding.discard(lease)
        if expired:
            metrics.LEASED_UNUSED.inc(len(expired))
            self._give_back(lease.plan, _returns(lease.plan, expired))

    async def close(self) -> None:
        """Stop leasing and give back every placeholder held; the caller waits for the settlements."""
        self._closed = True
        if self._asks:
            await asyncio.gather(*self._asks, return_exceptions=True)
        for lease in list(self._holding):
            if lease.timer is not None:
                lease.timer.cancel()
                lease.timer = None
            self._expire(lease, everything=True)


def _hand_out(lease: Lease, granted: list[Placeholder]) -> list[Placeholder]:
    """Give the waiting requests a placeholder each, in order, while there are any; the rest of
    the waiters get None (they ask Redis). Returns the placeholders left."""
    waiters, given = lease.waiters, 0
    while waiters:
        waiter = waiters.popleft()
        if waiter.done():  # its request went away
            continue
        if given < len(granted):
            waiter.set_result(granted[given])
            given += 1
        else:
            waiter.set_result(None)
    return granted[given:]


def _returns(plan: Plan, placeholders: list[Placeholder]) -> list[Settlement]:
    """Settlements that undo unused placeholders: refund tokens and requests, free slots, record no usage."""
    returns = []
    for placeholder in placeholders:
        id, admitted_ms = placeholder.id, placeholder.decision.now_ms
        if plan.token_keys or plan.slot_keys:
            returns.append(
                Settlement(id, admitted_ms, -placeholder.tokens, plan.token_keys, plan.slot_keys, _NO_USAGE)
            )
        if plan.request_keys:
            # settle.lua refunds a negative delta where it was charged: here one request.
            returns.append(Settlement(id, admitted_ms, -1, plan.request_keys, _NO_KEYS, _NO_USAGE))
    return returns
