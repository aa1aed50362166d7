"""The rate-limit windows against a real server, with both drivers, at exact instants:
grants up to the limit, the sliding window of buckets (no burst at a window's edge),
partial and whole grants, units given back, keys kept apart, the TTL field, and exact
grants under 50 concurrent checks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from favgate.storage import Bucket, Charge, Grant, Storage
from favgate.storage.indexes import INDEXES, RATE_LIMITS

pytestmark = pytest.mark.both_drivers

# In the future: a window in the past has already expired, and the server's TTL monitor
# may delete its document in the middle of a test. A whole second, so that the buckets
# (a 60th of the window: 100 ms) start on T0.
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
WINDOW = timedelta(seconds=6)


def at(seconds: float) -> datetime:
    """A time BSON stores exactly (milliseconds), ``seconds`` after T0."""
    return T0 + timedelta(milliseconds=round(seconds * 1000))


async def charge(
    storage: Storage,
    seconds: float,
    limit: int,
    cost: int = 1,
    *,
    want: int | None = None,
    stamp: float | None = None,
    key: str = "k",
) -> Grant:
    """Ask for ``cost`` units (and up to ``want``) at ``seconds``, stamped then."""
    asked = Charge(need=cost, want=want or cost, stamp=at(seconds if stamp is None else stamp))
    return await storage.rate_limits.charge(key, at(seconds), WINDOW, limit, asked)


async def give_back(storage: Storage, seconds: float, units: int, stamp: float) -> Grant:
    given = Charge(need=0, want=0, stamp=at(seconds), give_back=units, given_stamp=at(stamp))
    return await storage.rate_limits.charge("k", at(seconds), WINDOW, 10, given)


async def document(storage: Storage, key: str = "k") -> dict[str, Any]:
    doc = await storage._database[RATE_LIMITS].find_one({"_id": key})
    assert doc is not None
    return dict(doc)


async def test_grants_up_to_the_limit_then_refuses(storage: Storage) -> None:
    grants = [await charge(storage, 0.1 * i, limit=3) for i in range(5)]
    assert [g.granted for g in grants] == [1, 1, 1, 0, 0]
    assert [g.used for g in grants] == [1, 2, 3, 3, 3]
    # A refusal records nothing: three buckets of one unit, each leaving a window after
    # its end.
    assert grants[-1].buckets == (
        Bucket(at(0.1) + WINDOW, 1),
        Bucket(at(0.2) + WINDOW, 1),
        Bucket(at(0.3) + WINDOW, 1),
    )
    assert len((await document(storage))["buckets"]) == 3


async def test_units_of_one_bucket_add_up(storage: Storage) -> None:
    for seconds in (0.0, 0.02, 0.099):
        await charge(storage, seconds, limit=10)
    grant = await charge(storage, 0.1, limit=10)
    assert grant.buckets == (Bucket(at(0.1) + WINDOW, 3), Bucket(at(0.2) + WINDOW, 1))


async def test_a_unit_counts_until_a_window_after_its_bucket_ends(storage: Storage) -> None:
    await charge(storage, 0.05, limit=1)  # bucket [0, 0.1): it leaves at 6.1
    assert (await charge(storage, 6.0, limit=1)).granted == 0
    assert (await charge(storage, 6.099, limit=1)).granted == 0
    grant = await charge(storage, 6.1, limit=1)
    assert grant.granted == 1
    assert grant.buckets == (Bucket(at(6.2) + WINDOW, 1),)


async def test_no_burst_at_the_edge_of_a_window(storage: Storage) -> None:
    # A fixed window of 6 s would admit 5 at 5.9 s and 5 more at 6.1 s: 10 within 0.2 s.
    assert [(await charge(storage, 5.9, limit=5)).granted for _ in range(5)] == [1] * 5
    later = [(await charge(storage, 6.1 + 0.5 * i, limit=5)).granted for i in range(12)]
    assert later == [0] * 12
    # Capacity comes back only when the burst leaves the window, all at once here.
    back = [(await charge(storage, 12.0, limit=5)).granted for _ in range(6)]
    assert back == [1] * 5 + [0]


@pytest.mark.slow
async def test_never_more_than_the_limit_in_any_window(storage: Storage) -> None:
    # A request every 0.3 s for 24 s against 5 per 6 s, with a burst in the middle.
    times = sorted([300 * i for i in range(80)] + [9000] * 10)
    granted = [ms for ms in times if (await charge(storage, ms / 1000, limit=5)).granted]
    # The busiest window of 6 s starts at a granted request.
    busiest = max(sum(1 for later in granted if ms <= later < ms + 6000) for ms in granted)
    assert busiest == 5
    # Capacity is used as it returns: a unit counts 6.1 s here, so 4 windows' worth.
    assert len(granted) == 20


async def test_a_charge_is_granted_whole_or_not_at_all_below_its_need(
    storage: Storage,
) -> None:
    await charge(storage, 0, limit=5, cost=3)
    refused = await charge(storage, 0.1, limit=5, cost=3)
    assert (refused.granted, refused.used) == (0, 3)
    granted = await charge(storage, 0.2, limit=5, cost=2)
    assert (granted.granted, granted.used) == (2, 5)


async def test_above_its_need_a_charge_takes_what_fits(storage: Storage) -> None:
    assert (await charge(storage, 0, limit=10, cost=2, want=6)).granted == 6
    assert (await charge(storage, 0.1, limit=10, cost=1, want=8)).granted == 4
    full = await charge(storage, 0.2, limit=10, cost=0, want=3)
    assert full.granted == 0
    assert full.buckets == (Bucket(at(0.1) + WINDOW, 6), Bucket(at(0.2) + WINDOW, 4))


async def test_a_cost_above_the_limit_never_fits(storage: Storage) -> None:
    grant = await charge(storage, 0, limit=3, cost=4)
    assert (grant.granted, grant.buckets) == (0, ())


async def test_units_stamped_ahead_count_from_now_until_a_window_after_their_stamp(
    storage: Storage,
) -> None:
    # A lease: units granted at 0, stamped at 1 s, for the limiter to spend until then.
    assert (await charge(storage, 0, limit=4, cost=1, want=4, stamp=1.0)).granted == 4
    assert (await charge(storage, 0.5, limit=4)).granted == 0
    assert (await charge(storage, 7.0, limit=4)).granted == 0  # leaves at 1.1 + 6
    assert (await charge(storage, 7.1, limit=4)).granted == 1


async def test_units_given_back_make_room_again(storage: Storage) -> None:
    await charge(storage, 0, limit=10, cost=1, want=8, stamp=1.0)
    grant = await give_back(storage, 1.5, units=5, stamp=1.0)
    assert (grant.granted, grant.used) == (0, 3)
    # Never below zero (an empty bucket is no bucket), and a bucket of another stamp is
    # left alone.
    await charge(storage, 1.6, limit=10)
    grant = await give_back(storage, 1.7, units=9, stamp=1.0)
    assert grant.buckets == (Bucket(at(1.7) + WINDOW, 1),)


async def test_giving_back_to_a_bucket_that_left_the_window_changes_nothing(
    storage: Storage,
) -> None:
    await charge(storage, 0, limit=10, cost=2)
    await charge(storage, 5, limit=10, cost=1)
    grant = await give_back(storage, 6.5, units=2, stamp=0)
    assert grant.buckets == (Bucket(at(5.1) + WINDOW, 1),)


@pytest.mark.parametrize(
    ("need", "want", "give_back"), [(2, 1, 0), (-1, 1, 0), (0, 0, 0), (1, 1, -1)]
)
def test_a_charge_must_make_sense(need: int, want: int, give_back: int) -> None:
    with pytest.raises(ValueError, match="charge"):
        Charge(need=need, want=want, stamp=T0, give_back=give_back)


async def test_the_limit_must_be_positive(storage: Storage) -> None:
    with pytest.raises(ValueError, match="limit must be positive"):
        await charge(storage, 0, limit=0)


async def test_keys_are_independent(storage: Storage) -> None:
    await charge(storage, 0, limit=2, key="a")
    await charge(storage, 0, limit=2, key="a")
    assert (await charge(storage, 0, limit=2, key="a")).granted == 0
    assert (await charge(storage, 0, limit=2, key="b")).granted == 1
    assert len((await document(storage, "b"))["buckets"]) == 1


async def test_expiry_follows_the_latest_stamp_and_never_moves_back(storage: Storage) -> None:
    await charge(storage, 5, limit=10)
    assert (await document(storage))["expires_at"] == at(5.1) + WINDOW
    # A replica whose clock is behind must not make the document expire earlier.
    await charge(storage, 4, limit=10)
    assert (await document(storage))["expires_at"] == at(5.1) + WINDOW
    await charge(storage, 6, limit=10)
    assert (await document(storage))["expires_at"] == at(6.1) + WINDOW


async def test_idle_keys_expire_through_a_ttl_index(storage: Storage) -> None:
    [model] = INDEXES[RATE_LIMITS]
    indexes = await storage._database[RATE_LIMITS].index_information()
    index = indexes[model.document["name"]]
    assert index["key"] == [("expires_at", 1)]
    assert index["expireAfterSeconds"] == 0


@pytest.mark.slow
async def test_exact_under_concurrency(storage: Storage) -> None:
    # Fresh keys: the first checks of a key race to create its document as well.
    for _ in range(5):
        key = uuid.uuid4().hex
        now = datetime.now(UTC)
        asked = Charge(need=1, want=1, stamp=now)
        grants = await asyncio.gather(
            *(
                storage.rate_limits.charge(key, now, timedelta(seconds=60), 10, asked)
                for _ in range(50)
            )
        )
        assert sum(g.granted for g in grants) == 10
        assert sum(b["n"] for b in (await document(storage, key))["buckets"]) == 10
