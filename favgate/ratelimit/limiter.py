"""The rate limiter of one gateway process: the budgets' decisions at one round trip or less.

Budgets live in MongoDB (``favgate.storage.ratelimits``), so that every gateway process
draws on the same ones. Asking the database for every request would cost a round trip,
as much as the request's own work; this process saves most of them, in two ways, without
ever letting the processes together admit more than a budget allows.

**Coalescing.** At most one check per key is in flight from this process. Requests that
arrive meanwhile wait for it to return and then go together, in one check that asks for
all their units at once; each is admitted if its own units were granted. A key used by
one client at a time pays one round trip per request, as before; a key under concurrent
load pays one per batch.

**Leases.** A key that took n units from this process in the last ``LEASE_SECONDS`` asks,
with its next check, for n units more, to be spent by this process over the next
``LEASE_SECONDS`` or so without asking again; no more than the budget's share of
``LEASE_SECONDS``, and no lease at all under ``LEASE_MIN_DEMAND`` units. A lease's units
are stamped at its end: the store counts them as spent then and keeps them in the window
until a window after that, however early they are really spent, so that every real
window still holds at most the budget. Units a lease did not spend are given back with
the key's next check, or by a check of their own once the key falls quiet. A small
budget (under 120 a minute, by default) or a key asked less than twice a second never
leases: every decision is then the store's own. (A key that asked twice in the last
second is likely to ask again; leasing from then on spares a key coming back to life the
round trip per request that waiting for a busier second would cost it.)
``FAVGATE_RATE_LIMIT_LEASES=false`` turns leases off.

A decision (``Decision``) carries what clients are told: what is left of the budget
(counting this process's unspent lease as left, since it is the client's), when it is
whole again, and, when refused, how long to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from favgate.storage import RateLimitWindows
from favgate.storage.ratelimits import Bucket, Charge, Grant, Slices

logger = logging.getLogger(__name__)

POLICY_NAME = "default"
WINDOW_SECONDS = 60
LEASE_SECONDS = 1.0
LEASE_MIN_DEMAND = 2
# Keys idle for this long are forgotten (their window lives on in the database).
FORGET_AFTER_SECONDS = 4 * LEASE_SECONDS


@dataclass(frozen=True, slots=True)
class Policy:
    limit: int
    window: int = WINDOW_SECONDS  # seconds; small in tests
    leases: bool = True

    @property
    def lease_cap(self) -> int:
        """The most units one lease may hold: the budget's share of a lease's time."""
        if not self.leases:
            return 0
        return math.floor(self.limit * LEASE_SECONDS / self.window)


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int | None  # None when admitted
    window: int = WINDOW_SECONDS

    def headers(self) -> dict[str, str]:
        """The budget's fields: the de facto ones and those of the IETF draft."""
        fields = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w={self.window}',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.reset_seconds}',
        }
        if self.retry_after is not None:
            fields["Retry-After"] = str(self.retry_after)
        return fields

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """``headers()`` as an ASGI message carries them."""
        return [(_raw_name(name), value.encode()) for name, value in self.headers().items()]


@functools.cache
def _raw_name(name: str) -> bytes:
    """A field's name as an ASGI message carries it: encoded once, not on every response."""
    return name.lower().encode()


def decide(
    buckets: tuple[Bucket, ...],
    policy: Policy,
    *,
    admitted: bool,
    cost: int,
    now: datetime,
    unspent: int = 0,
) -> Decision:
    """The decision a window implies, with the times clients are told to wait. ``unspent``
    units of the window are this process's lease: used for the store, left for the client."""
    used = sum(bucket.units for bucket in buckets) - unspent
    reset = _seconds_until(buckets[-1].leaves, now) if buckets else 0
    retry_after = None
    if not admitted:
        retry_after = max(1, _seconds_until(_fits_at(buckets, policy, cost, now), now))
    return Decision(
        admitted=admitted,
        limit=policy.limit,
        remaining=max(0, policy.limit - used),
        reset_seconds=reset,
        retry_after=retry_after,
        window=policy.window,
    )


def _fits_at(buckets: tuple[Bucket, ...], policy: Policy, cost: int, now: datetime) -> datetime:
    """When ``cost`` more units fit: once enough buckets have left. A cost above the limit
    never fits, and is told to wait a whole window."""
    leaving = sum(bucket.units for bucket in buckets) + cost - policy.limit
    if leaving <= 0:
        return now
    if cost <= policy.limit:
        for bucket in buckets:
            leaving -= bucket.units
            if leaving <= 0:
                return bucket.leaves
    return now + timedelta(seconds=policy.window)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(0, math.ceil((moment - now).total_seconds()))


@dataclass(eq=False, slots=True)
class _Waiter:
    cost: int
    decided: asyncio.Future[Decision]


@dataclass(slots=True)
class _Lease:
    units: int  # granted, not spent yet
    stamp: datetime  # the store counts them as spent then
    expires: float  # monotonic; they are spent before, or given back


_NOTHING_YET = Grant(granted=0, buckets=())


@dataclass(slots=True)
class _Key:
    """What this process knows of one key."""

    key: str
    waiting: list[_Waiter] = field(default_factory=list)
    checking: asyncio.Task[None] | None = None
    lease: _Lease | None = None
    expired: _Lease | None = None  # to give back with the next check
    giving_back: asyncio.Task[None] | None = None
    returning: bool = False  # giving_back is past waiting: its charge is under way
    window: Grant = _NOTHING_YET  # as the last check left it
    # Units asked of this process, in the current and in the previous lease period.
    period_started: float = 0.0
    demand: int = 0
    previous_demand: int = 0
    last_used: float = 0.0

    def count(self, units: int, now: float) -> None:
        if now - self.period_started >= LEASE_SECONDS:
            recent = now - self.period_started < 2 * LEASE_SECONDS
            self.previous_demand = self.demand if recent else 0
            self.demand, self.period_started = 0, now
        self.demand += units
        self.last_used = now

    @property
    def recent_demand(self) -> int:
        return max(self.demand, self.previous_demand)

    def idle(self, now: float) -> bool:
        busy = self.waiting or self.checking or self.giving_back or self.lease or self.expired
        return not busy and now - self.last_used > FORGET_AFTER_SECONDS


class Limiter:
    """One per process (the app's lifespan owns it): charges keys against one policy."""

    def __init__(self, store: RateLimitWindows, policy: Policy) -> None:
        self.store = store
        self.policy = policy
        self._keys: dict[str, _Key] = {}
        self._next_sweep = 0.0

    async def acquire(self, key: str, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``key``'s budget if they are all there."""
        if cost < 1:
            raise ValueError(f"cost must be positive; got {cost}")
        state = self._keys.get(key) or self._keys.setdefault(key, _Key(key))
        clock = time.monotonic()
        state.count(cost, clock)
        self._sweep(clock)
        lease = self._live_lease(state, clock)
        if lease is not None and lease.units >= cost and not state.waiting:
            lease.units -= cost
            return self._from_lease(state, lease, cost)
        waiter = _Waiter(cost, asyncio.get_running_loop().create_future())
        state.waiting.append(waiter)
        if state.checking is None:
            state.checking = asyncio.create_task(self._check(state))
        return await waiter.decided

    def spent(self, key: str) -> Decision | None:
        """A refusal decided without the store, when the key's last check here left no
        unit to spend until a bucket leaves the window and no lease is running; else None
        (the store decides). For what must not even be looked at while a client cannot
        pay. Other processes only ever spend more, so this refuses nothing the store would
        admit, but for units another process gives back early (a second at most)."""
        state = self._keys.get(key)
        if state is None or self._live_lease(state, time.monotonic()) is not None:
            return None
        now = datetime.now(UTC)
        if _fits_at(state.window.buckets, self.policy, 1, now) <= now:
            return None
        return decide(state.window.buckets, self.policy, admitted=False, cost=1, now=now)

    async def close(self) -> None:
        """Give back every unspent lease; at shutdown, while the database is there."""
        tasks = [s.checking for s in self._keys.values() if s.checking is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        # A give-back still waiting is done here instead; one under way is let finish: cut
        # off, its units would be neither given back nor known to have been.
        returning = []
        for state in self._keys.values():
            if state.giving_back is not None:
                if state.returning:
                    returning.append(state.giving_back)
                else:
                    state.giving_back.cancel()
        await asyncio.gather(*returning, return_exceptions=True)
        for state in self._keys.values():
            if state.lease is not None:
                state.expired, state.lease = state.lease, None
            with contextlib.suppress(Exception):
                await self._give_back(state)

    # --- one check for everyone waiting on a key ---------------------------------------

    async def _check(self, state: _Key) -> None:
        try:
            while self._serve_from_lease(state):
                batch, state.waiting = state.waiting, []
                try:
                    await self._charge_batch(state, batch)
                except Exception as exc:
                    # An outage: every request of the batch fails, and so do those that
                    # came during the check. They would wait for another check, each one
                    # a deadline long while the database stalls: fail closed, at once.
                    batch, state.waiting = [*batch, *state.waiting], []
                    for waiter in batch:
                        if not waiter.decided.done():
                            waiter.decided.set_exception(exc)
                except BaseException:
                    for waiter in [*batch, *state.waiting]:
                        waiter.decided.cancel()
                    raise
        finally:
            state.checking = None

    async def _charge_batch(self, state: _Key, batch: list[_Waiter]) -> None:
        now, clock = datetime.now(UTC), time.monotonic()
        needed = sum(waiter.cost for waiter in batch)
        extra = self._lease_size(state)
        given = state.expired
        state.expired = None
        if given is None:
            given = self._take_unspent_lease(state)
        charge = Charge(
            need=min(waiter.cost for waiter in batch),
            want=needed + extra,
            stamp=now + timedelta(seconds=LEASE_SECONDS) if extra else now,
            give_back=given.units if given else 0,
            given_stamp=given.stamp if given else None,
        )
        grant = await self._charge(state.key, now, charge)
        state.window = grant
        self._hand_out(state, batch, grant, charge, now, clock)

    def _serve_from_lease(self, state: _Key) -> bool:
        """Admit waiting requests, in order, from the key's lease while it lasts; whether
        some are still waiting for a check."""
        lease = self._live_lease(state, time.monotonic())
        while state.waiting and lease is not None and lease.units >= state.waiting[0].cost:
            waiter = state.waiting.pop(0)
            lease.units -= waiter.cost
            if not waiter.decided.done():
                waiter.decided.set_result(self._from_lease(state, lease, waiter.cost))
        return bool(state.waiting)

    def _lease_size(self, state: _Key) -> int:
        size = min(state.recent_demand, self.policy.lease_cap)
        return size if size >= LEASE_MIN_DEMAND else 0

    def _take_unspent_lease(self, state: _Key) -> _Lease | None:
        """A lease still running is given back too: the new check brings a fresh one."""
        lease, state.lease = state.lease, None
        return lease if lease is not None and lease.units else None

    def _hand_out(
        self,
        state: _Key,
        batch: list[_Waiter],
        grant: Grant,
        charge: Charge,
        now: datetime,
        clock: float,
    ) -> None:
        """Admit the batch's requests in order while the grant lasts; lease what is left."""
        left = grant.granted
        admitted = []
        for waiter in batch:
            fits = waiter.cost <= left
            left -= waiter.cost if fits else 0
            admitted.append(fits)
        if left:
            # Spent by the end of the stamp's bucket at the latest, when the store counts
            # them as spent: never later than it thinks.
            lasts = Slices(timedelta(seconds=self.policy.window)).end(charge.stamp) - now
            state.lease = _Lease(left, charge.stamp, clock + lasts.total_seconds())
            self._schedule_give_back(state)
        for waiter, fits in zip(batch, admitted, strict=True):
            decision = decide(
                grant.buckets, self.policy, admitted=fits, cost=waiter.cost, now=now, unspent=left
            )
            if not waiter.decided.done():
                waiter.decided.set_result(decision)

    def _from_lease(self, state: _Key, lease: _Lease, cost: int) -> Decision:
        window, now = state.window, datetime.now(UTC)
        reset = _seconds_until(window.buckets[-1].leaves, now) if window.buckets else 0
        return Decision(
            admitted=True,
            limit=self.policy.limit,
            remaining=max(0, self.policy.limit - window.used + lease.units),
            reset_seconds=reset,
            retry_after=None,
            window=self.policy.window,
        )

    def _live_lease(self, state: _Key, clock: float) -> _Lease | None:
        lease = state.lease
        if lease is not None and clock >= lease.expires:
            state.lease = None
            if lease.units:
                state.expired = lease
            return None
        return lease

    # --- leases nobody spent ---------------------------------------------------------------

    def _schedule_give_back(self, state: _Key) -> None:
        if state.giving_back is None:
            state.giving_back = asyncio.create_task(self._give_back_when_quiet(state))

    async def _give_back_when_quiet(self, state: _Key) -> None:
        """Once the key's leases have run out and no check is under way (a check gives
        back what it finds expired itself), give back what they did not spend."""
        try:
            while True:
                if state.lease is not None:
                    await asyncio.sleep(max(0.0, state.lease.expires - time.monotonic()))
                    self._live_lease(state, time.monotonic())
                elif state.checking is not None:
                    await asyncio.wait([state.checking])
                else:
                    break
            state.returning = True
            await self._give_back(state)
        except Exception as exc:  # the units stay counted until they leave the window
            logger.warning("could not give back unspent rate-limit units: %s", exc)
        finally:
            state.giving_back, state.returning = None, False

    async def _give_back(self, state: _Key) -> None:
        given, state.expired = state.expired, None
        if given is None or not given.units:
            return
        now = datetime.now(UTC)
        charge = Charge(need=0, want=0, stamp=now, give_back=given.units, given_stamp=given.stamp)
        state.window = await self._charge(state.key, now, charge)

    async def _charge(self, key: str, now: datetime, charge: Charge) -> Grant:
        window = timedelta(seconds=self.policy.window)
        return await self.store.charge(key, now, window, self.policy.limit, charge)

    def _sweep(self, clock: float) -> None:
        """Forget keys idle for a while, now and then, so that memory follows live keys."""
        if clock < self._next_sweep:
            return
        self._next_sweep = clock + FORGET_AFTER_SECONDS
        for key in [key for key, state in self._keys.items() if state.idle(clock)]:
            del self._keys[key]
