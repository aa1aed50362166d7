"""The rate-limit windows against a real server, with both drivers, at exact instants:
admission up to the limit, the sliding window (no burst at a window's edge), costs,
keys kept apart, the TTL field, and exact admission under 50 concurrent checks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from favgate.storage import Storage, Window
from favgate.storage.indexes import INDEXES, RATE_LIMITS

# In the future: a window in the past has already expired, and the server's TTL monitor
# may delete its document in the middle of a test.
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
WINDOW = timedelta(seconds=2)


def at(seconds: float) -> datetime:
    """A time BSON stores exactly (milliseconds), ``seconds`` after T0."""
    return T0 + timedelta(milliseconds=round(seconds * 1000))


async def hit(
    storage: Storage, seconds: float, limit: int, cost: int = 1, key: str = "k"
) -> Window:
    return await storage.rate_limits.hit(key, at(seconds), WINDOW, limit, cost)


async def document(storage: Storage, key: str = "k") -> dict[str, Any]:
    doc = await storage._database[RATE_LIMITS].find_one({"_id": key})
    assert doc is not None
    return dict(doc)


async def test_admits_up_to_the_limit_then_refuses(storage: Storage) -> None:
    decisions = [await hit(storage, 0.1 * i, limit=3) for i in range(5)]
    assert [w.admitted for w in decisions] == [True, True, True, False, False]
    assert [len(w.hits) for w in decisions] == [1, 2, 3, 3, 3]
    # A refusal records nothing: the window is the three admitted hits, oldest first.
    assert decisions[-1].hits == (at(0), at(0.1), at(0.2))
    assert len((await document(storage))["hits"]) == 3


async def test_a_hit_counts_for_exactly_one_window(storage: Storage) -> None:
    await hit(storage, 0, limit=1)
    assert not (await hit(storage, 1.999, limit=1)).admitted
    # At T0 + 2 s the hit of T0 has left the window [now - 2 s, now): room again.
    window = await hit(storage, 2.0, limit=1)
    assert window.admitted
    assert window.hits == (at(2.0),)


async def test_no_burst_at_the_edge_of_a_window(storage: Storage) -> None:
    # A fixed window of 2 s would admit 5 at 1.9 s and 5 more at 2.1 s: 10 within 0.2 s.
    assert all([(await hit(storage, 1.9, limit=5)).admitted for _ in range(5)])
    assert not any([(await hit(storage, 2.1 + 0.1 * i, limit=5)).admitted for i in range(18)])
    # Capacity comes back only when the burst leaves the window, all at once here.
    assert [(await hit(storage, 3.9, limit=5)).admitted for _ in range(6)] == [True] * 5 + [False]


async def test_never_more_than_the_limit_in_any_window(storage: Storage) -> None:
    # A request every 0.1 s for 8 s against 5 per 2 s, with a burst in the middle; in
    # whole milliseconds, so that the window arithmetic below is exact.
    times = sorted([100 * i for i in range(80)] + [3000] * 10)
    admitted = [ms for ms in times if (await hit(storage, ms / 1000, limit=5)).admitted]
    # The busiest window of 2 s starts at an admitted request.
    busiest = max(sum(1 for later in admitted if ms <= later < ms + 2000) for ms in admitted)
    assert busiest == 5
    # And capacity is used as it returns: 5 admitted per 2 s, 20 over 8 s.
    assert len(admitted) == 20


async def test_capacity_returns_hit_by_hit(storage: Storage) -> None:
    for seconds in (0.0, 0.5, 1.0):
        await hit(storage, seconds, limit=3)
    assert not (await hit(storage, 1.5, limit=3)).admitted
    window = await hit(storage, 2.0, limit=3)  # only the hit of 0.0 has left
    assert window.admitted
    assert window.hits == (at(0.5), at(1.0), at(2.0))
    assert not (await hit(storage, 2.4, limit=3)).admitted


async def test_a_cost_is_admitted_whole_or_not_at_all(storage: Storage) -> None:
    await hit(storage, 0, limit=5, cost=3)
    refused = await hit(storage, 0.1, limit=5, cost=3)
    assert not refused.admitted
    assert len(refused.hits) == 3
    admitted = await hit(storage, 0.2, limit=5, cost=2)
    assert admitted.admitted
    assert admitted.hits == (at(0), at(0), at(0), at(0.2), at(0.2))


async def test_a_cost_above_the_limit_never_fits(storage: Storage) -> None:
    window = await hit(storage, 0, limit=3, cost=4)
    assert not window.admitted
    assert window.hits == ()


@pytest.mark.parametrize(("cost", "limit"), [(0, 5), (-1, 5), (1, 0)])
async def test_cost_and_limit_must_be_positive(storage: Storage, cost: int, limit: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        await hit(storage, 0, limit=limit, cost=cost)


async def test_keys_are_independent(storage: Storage) -> None:
    await hit(storage, 0, limit=2, key="a")
    await hit(storage, 0, limit=2, key="a")
    assert not (await hit(storage, 0, limit=2, key="a")).admitted
    assert (await hit(storage, 0, limit=2, key="b")).admitted
    assert len((await document(storage, "b"))["hits"]) == 1


async def test_expiry_follows_the_latest_hit_and_never_moves_back(storage: Storage) -> None:
    await hit(storage, 5, limit=10)
    assert (await document(storage))["expires_at"] == at(5) + WINDOW
    # A replica whose clock is behind must not make the document expire earlier.
    await hit(storage, 4, limit=10)
    assert (await document(storage))["expires_at"] == at(5) + WINDOW
    await hit(storage, 6, limit=10)
    assert (await document(storage))["expires_at"] == at(6) + WINDOW


async def test_idle_keys_expire_through_a_ttl_index(storage: Storage) -> None:
    [model] = INDEXES[RATE_LIMITS]
    indexes = await storage._database[RATE_LIMITS].index_information()
    index = indexes[model.document["name"]]
    assert index["key"] == [("expires_at", 1)]
    assert index["expireAfterSeconds"] == 0


async def test_exact_under_concurrency(storage: Storage) -> None:
    # Fresh keys: the first checks of a key race to create its document as well.
    for _ in range(5):
        key = uuid.uuid4().hex
        now = datetime.now(UTC)
        windows = await asyncio.gather(
            *(storage.rate_limits.hit(key, now, timedelta(seconds=60), 10) for _ in range(50))
        )
        assert sum(w.admitted for w in windows) == 10
        assert len((await document(storage, key))["hits"]) == 10
