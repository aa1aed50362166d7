"""The process's limiter against a real server: concurrent checks of a key go together in
one round trip, busy keys lease units ahead and give back what they did not spend, and two
processes leasing from one budget still never admit more than it."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
from helpers import CHAT_JID, CommandLog, Tenants, serving

from favgate.auth import hash_token
from favgate.config import Settings
from favgate.ratelimit.limiter import LEASE_MIN_DEMAND, Limiter, Policy
from favgate.storage import Storage
from favgate.storage.indexes import RATE_LIMITS
from favgate.storage.ratelimits import Charge, Grant

pytestmark = pytest.mark.both_drivers

CHECK = ("findAndModify", RATE_LIMITS)
# 100 units per second: leases of up to 100.
BUSY = Policy(limit=6000)


async def units_in_store(storage: Storage, key: str) -> int:
    doc = await storage._database[RATE_LIMITS].find_one({"_id": key})
    return 0 if doc is None else sum(bucket["n"] for bucket in doc["buckets"])


def checks(commands: CommandLog) -> int:
    return commands.commands.count(CHECK)


async def recording(commands: CommandLog) -> None:
    commands.clear()
    commands.active = True


# --- Coalescing ---------------------------------------------------------------------------


async def test_concurrent_checks_of_a_key_go_together(
    storage: Storage, commands: CommandLog
) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=10))
    await recording(commands)
    decisions = await asyncio.gather(*(limiter.acquire("key") for _ in range(50)))
    assert sum(d.admitted for d in decisions) == 10
    assert commands.commands == [CHECK]
    assert [d.remaining for d in decisions] == [0] * 50
    assert await units_in_store(storage, "key") == 10


async def test_requests_arriving_during_a_check_go_in_the_next_one(
    storage: Storage, commands: CommandLog
) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=100))
    await recording(commands)
    first = asyncio.create_task(limiter.acquire("key"))
    while not commands.commands:  # the first check is on its way
        await asyncio.sleep(0.001)
    later = await asyncio.gather(*(limiter.acquire("key") for _ in range(20)))
    assert (await first).admitted
    assert all(d.admitted for d in later)
    assert commands.commands == [CHECK, CHECK]
    assert await units_in_store(storage, "key") == 21


async def test_costs_are_granted_whole_in_a_batch(storage: Storage) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=5))
    decisions = await asyncio.gather(*(limiter.acquire("key", cost) for cost in (3, 3, 1, 2)))
    # 5 fit: the first 3, not the second 3, then 1; then 2 no longer fit in what is left.
    assert [d.admitted for d in decisions] == [True, False, True, False]
    # The unit left over is kept for the next request a moment, then given back.
    await limiter.close()
    assert await units_in_store(storage, "key") == 4


async def test_keys_are_checked_apart(storage: Storage, commands: CommandLog) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=3))
    await recording(commands)
    decisions = await asyncio.gather(*(limiter.acquire(k) for k in "abc" * 4))
    assert commands.commands == [CHECK] * 3
    assert sum(d.admitted for d in decisions) == 9


# --- Leases -------------------------------------------------------------------------------


async def test_a_busy_key_leases_and_saves_round_trips(
    storage: Storage, commands: CommandLog
) -> None:
    limiter = Limiter(storage.rate_limits, BUSY)
    await recording(commands)
    decisions = [await limiter.acquire("key") for _ in range(200)]
    assert all(d.admitted for d in decisions)
    # The budget left is told exactly, a lease's unspent units counting as the client's.
    assert [d.remaining for d in decisions] == list(range(5999, 5799, -1))
    # One check per request until the demand is worth a lease, then one per lease.
    assert LEASE_MIN_DEMAND <= checks(commands) <= LEASE_MIN_DEMAND + 10
    # Units leased and not spent yet are in the store (stamped ahead) ...
    assert await units_in_store(storage, "key") >= 200
    # ... and go back when the limiter closes.
    await limiter.close()
    assert await units_in_store(storage, "key") == 200


@pytest.mark.slow
async def test_unspent_units_go_back_once_the_key_is_quiet(
    storage: Storage, commands: CommandLog
) -> None:
    limiter = Limiter(storage.rate_limits, BUSY)
    for _ in range(3 * LEASE_MIN_DEMAND):
        assert (await limiter.acquire("key")).admitted
    assert await units_in_store(storage, "key") > 3 * LEASE_MIN_DEMAND
    deadline = time.monotonic() + 5
    while await units_in_store(storage, "key") != 3 * LEASE_MIN_DEMAND:
        assert time.monotonic() < deadline, "the lease was never given back"
        await asyncio.sleep(0.1)
    await limiter.close()
    assert await units_in_store(storage, "key") == 3 * LEASE_MIN_DEMAND


async def test_small_budgets_never_lease(storage: Storage, commands: CommandLog) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=100))  # under 480 a minute
    await recording(commands)
    decisions = [await limiter.acquire("key") for _ in range(30)]
    assert [d.remaining for d in decisions] == list(range(99, 69, -1))
    assert checks(commands) == 30
    assert await units_in_store(storage, "key") == 30


async def test_leases_can_be_turned_off(storage: Storage, commands: CommandLog) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=6000, leases=False))
    await recording(commands)
    for _ in range(30):
        await limiter.acquire("key")
    assert checks(commands) == 30


@pytest.mark.slow
async def test_two_processes_leasing_never_admit_more_than_the_budget(storage: Storage) -> None:
    # 600 a minute: leases of up to 10 units. Each "process" (a limiter of its own on the
    # same store) asks for 450, four requests at a time.
    policy = Policy(limit=600)
    limiters = [Limiter(storage.rate_limits, policy) for _ in range(2)]

    async def client(limiter: Limiter) -> int:
        admitted = 0
        for _ in range(450 // 4):
            decisions = await asyncio.gather(*(limiter.acquire("key") for _ in range(4)))
            admitted += sum(d.admitted for d in decisions)
        return admitted

    admitted = sum(await asyncio.gather(*(client(limiter) for limiter in limiters)))
    assert admitted <= 600
    # Refusals start while the other process may hold a lease: at most one each.
    assert admitted >= 600 - 2 * policy.lease_cap
    for limiter in limiters:
        await limiter.close()
    assert await units_in_store(storage, "key") == admitted


class GiveBacksSeen:
    """The real store, telling when a charge that only gives units back starts; its
    command then leaves a moment later, as one waiting for a pooled connection does."""

    def __init__(self, storage: Storage) -> None:
        self.store = storage.rate_limits
        self.started = asyncio.Event()

    async def charge(
        self, key: str, now: datetime, window: timedelta, limit: int, charge: Charge
    ) -> Grant:
        if charge.want == 0:
            self.started.set()
            await asyncio.sleep(0.05)
        return await self.store.charge(key, now, window, limit, charge)


async def test_a_give_back_under_way_when_the_limiter_closes_is_not_lost(
    storage: Storage,
) -> None:
    """The quiet key's give-back starts as its lease runs out (at the end of its second):
    closing the limiter then must let it finish, not cut it off and forget its units."""
    store = GiveBacksSeen(storage)
    limiter = Limiter(store, Policy(limit=5))  # type: ignore[arg-type]
    decisions = await asyncio.gather(*(limiter.acquire("key", cost) for cost in (3, 3, 1, 2)))
    assert [d.admitted for d in decisions] == [True, False, True, False]  # 1 unit left over
    await asyncio.wait_for(store.started.wait(), timeout=5)
    await limiter.close()
    assert await units_in_store(storage, "key") == 4


# --- Over HTTP ----------------------------------------------------------------------------


async def test_a_busy_token_pays_less_than_a_check_per_request(
    settings: Settings, tenants: Tenants, commands: CommandLog, storage: Storage
) -> None:
    async with serving(settings.replace(rate_limit=6000, rate_limit_leases=True)) as client:
        await recording(commands)
        responses = [
            await client.post(
                "/api/chat/favorite/main",
                json={"number": CHAT_JID, "favorite": True},
                headers={"token": tenants.acme_token},
            )
            for _ in range(100)
        ]
        commands.active = False
        assert [r.status_code for r in responses] == [200] * 100
        assert [int(r.headers["x-ratelimit-remaining"]) for r in responses] == list(
            range(5999, 5899, -1)
        )
        assert checks(commands) <= LEASE_MIN_DEMAND + 6
    # The app's lifespan gave the unspent units back as it closed.
    assert await units_in_store(storage, hash_token(tenants.acme_token)) == 100


def test_the_lease_switch_comes_from_the_environment() -> None:
    assert Settings.from_env({}).rate_limit_leases is True
    assert Settings.from_env({"FAVGATE_RATE_LIMIT_LEASES": "false"}).rate_limit_leases is False


async def test_an_unused_client_is_harmless(storage: Storage) -> None:
    # Closing a limiter that never charged anything asks nothing of the store.
    await Limiter(storage.rate_limits, BUSY).close()
    assert await storage._database[RATE_LIMITS].count_documents({}) == 0
