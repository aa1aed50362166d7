"""The lookup caches: the LRU itself (on a clock the test moves), then the caching
repositories against a real server, with both drivers: what they remember, for how long,
and what a write through the same storage makes them forget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, Tenants

from favgate.auth import generate_token, hash_token
from favgate.cache import MISS, Lookup, LruCache
from favgate.config import ConfigError, Settings
from favgate.storage import Caller, Instance, InstanceStatus, Storage, open_storage
from favgate.storage.caching import CachingDirectory
from favgate.storage.indexes import MESSAGES

pytestmark = pytest.mark.both_drivers

# --- LruCache -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_stored_value_is_returned_until_its_ttl() -> None:
    clock = Clock()
    cache: LruCache[str, int] = LruCache(10, ttl=1.0, clock=clock)
    assert cache.get("a") is MISS
    cache.put("a", 1)
    clock.now += 0.999
    assert cache.get("a") == 1
    clock.now += 0.001
    assert cache.get("a") is MISS
    assert len(cache) == 0  # an expired entry is dropped when found


def test_expired_entries_do_not_pile_up() -> None:
    """A key stored once and never asked for again (a new chat each request) is dropped
    once it has expired, as later keys come in: the cache holds what is live, not
    ``max_entries`` of expired values for the garbage collector to walk."""
    clock = Clock()
    cache: LruCache[int, int] = LruCache(1000, ttl=1.0, clock=clock)
    for key in range(500):
        cache.put(key, key)
        clock.now += 0.01  # 100 keys a second: those of the last second are live
    assert 100 <= len(cache) <= 101
    assert cache.get(499) == 499 and cache.get(0) is MISS


def test_an_expired_entry_goes_whenever_it_was_last_used() -> None:
    clock = Clock()
    cache: LruCache[str, int] = LruCache(10, ttl=1.0, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    clock.now += 0.5
    assert cache.get("a") == 1  # now the most recently used, still due at 101.0
    clock.now += 0.6
    cache.put("c", 3)
    assert (len(cache), cache.get("a"), cache.get("b"), cache.get("c")) == (1, MISS, MISS, 3)


def test_none_is_a_value_not_a_miss() -> None:
    cache: LruCache[str, int | None] = LruCache(10, ttl=1.0)
    cache.put("unknown", None)
    assert cache.get("unknown") is None
    assert cache.get("other") is MISS


def test_without_ttl_values_never_expire() -> None:
    clock = Clock()
    cache: LruCache[str, int] = LruCache(10, clock=clock)
    cache.put("a", 1)
    clock.now += 1e12  # some thirty thousand years
    assert cache.get("a") == 1


def test_a_ttl_of_zero_stores_nothing() -> None:
    cache: LruCache[str, int] = LruCache(10, ttl=0)
    cache.put("a", 1)
    assert (cache.get("a"), len(cache)) == (MISS, 0)


def test_putting_again_renews_the_ttl() -> None:
    clock = Clock()
    cache: LruCache[str, int] = LruCache(10, ttl=1.0, clock=clock)
    cache.put("a", 1)
    clock.now += 0.8
    cache.put("a", 2)
    clock.now += 0.8
    assert cache.get("a") == 2


def test_the_least_recently_used_goes_first() -> None:
    cache: LruCache[str, int] = LruCache(3)
    for number, key in enumerate("abc"):
        cache.put(key, number)
    assert cache.get("a") == 0  # now the most recently used
    cache.put("d", 3)
    assert [cache.get(key) for key in "abcd"] == [0, MISS, 2, 3]
    assert len(cache) == 3


def test_discard_and_clear() -> None:
    cache: LruCache[str, int] = LruCache(10)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.discard("a")
    cache.discard("never-stored")
    assert (cache.get("a"), cache.get("b")) == (MISS, 2)
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize(("max_entries", "ttl"), [(0, None), (-1, 1.0), (10, -0.1)])
def test_nonsense_bounds_are_refused(max_entries: int, ttl: float | None) -> None:
    with pytest.raises(ValueError):
        LruCache(max_entries, ttl)


# --- Lookup -------------------------------------------------------------------------------


class Loader:
    """Answers ``key * 2`` once released, counting its loads; a stand-in for a query."""

    def __init__(self) -> None:
        self.loads: list[int] = []
        self.release = asyncio.Event()
        self.failure: Exception | None = None

    async def __call__(self, key: int) -> int:
        self.loads.append(key)
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return key * 2


async def started(*tasks: asyncio.Task[int]) -> None:
    """Let ``tasks`` run up to the loader's wait."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_concurrent_misses_share_one_load() -> None:
    loader = Loader()
    lookup = Lookup(LruCache[int, int](10, ttl=60), loader)
    tasks = [asyncio.create_task(lookup(7)) for _ in range(10)]
    other = asyncio.create_task(lookup(8))
    await started(*tasks, other)
    loader.release.set()
    assert await asyncio.gather(*tasks, other) == [14] * 10 + [16]
    assert loader.loads == [7, 8]
    assert await lookup(7) == 14  # remembered
    assert loader.loads == [7, 8]


async def test_a_failed_load_reaches_every_caller_and_is_not_remembered() -> None:
    loader = Loader()
    loader.failure = ConnectionError("database down")
    lookup = Lookup(LruCache[int, int](10, ttl=60), loader)
    tasks = [asyncio.create_task(lookup(1)) for _ in range(3)]
    await started(*tasks)
    loader.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError] * 3
    loader.failure = None
    assert await lookup(1) == 2
    assert loader.loads == [1, 1]


async def test_a_cancelled_caller_cancels_neither_the_load_nor_the_others() -> None:
    loader = Loader()
    lookup = Lookup(LruCache[int, int](10, ttl=60), loader)
    first, second = asyncio.create_task(lookup(3)), asyncio.create_task(lookup(3))
    await started(first, second)
    first.cancel()
    await started()
    loader.release.set()
    assert await second == 6
    assert first.cancelled()
    assert (await lookup(3), loader.loads) == (6, [3])


async def test_an_answer_loaded_across_forget_is_not_remembered() -> None:
    loader = Loader()
    lookup = Lookup(LruCache[int, int](10, ttl=60), loader)
    before = asyncio.create_task(lookup(5))
    await started(before)
    lookup.forget()  # a write happened while the load was in flight
    after = asyncio.create_task(lookup(5))  # does not join the stale load
    await started(after)
    loader.release.set()
    assert (await before, await after) == (10, 10)
    assert loader.loads == [5, 5]
    assert await lookup(5) == 10  # the load that started after the write was kept
    assert loader.loads == [5, 5]


# --- The setting --------------------------------------------------------------------------


def test_the_ttl_defaults_to_one_second() -> None:
    assert Settings.from_env({}).cache_ttl_seconds == Settings().cache_ttl_seconds == 1.0


@pytest.mark.parametrize(("raw", "ttl"), [("0", 0.0), ("0.25", 0.25), ("2", 2.0), ("2.0", 2.0)])
def test_the_ttl_is_read_from_the_environment(raw: str, ttl: float) -> None:
    assert Settings.from_env({"FAVGATE_CACHE_TTL_SECONDS": raw}).cache_ttl_seconds == ttl


@pytest.mark.parametrize("raw", ["2.01", "60", "-1", "soon", "", "nan", "inf"])
def test_a_ttl_past_two_seconds_or_malformed_fails_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="FAVGATE_CACHE_TTL_SECONDS"):
        Settings.from_env({"FAVGATE_CACHE_TTL_SECONDS": raw})


@pytest.mark.parametrize("ttl", [2.5, -1.0])
def test_the_directory_refuses_a_ttl_past_the_cap(ttl: float) -> None:
    with pytest.raises(ValueError, match="TTL"):
        CachingDirectory({}, ttl)


# --- The caching repositories, against the database ---------------------------------------

TTL = 0.5


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.replace(cache_ttl_seconds=TTL)


@pytest.fixture
async def elsewhere(settings: Settings, storage: Storage) -> AsyncIterator[Storage]:
    """A second storage on the same database, as another gateway process or the CLI has."""
    other = open_storage(settings)
    try:
        yield other
    finally:
        await other.close()


async def test_a_revoked_token_still_works_until_the_ttl(
    storage: Storage, elsewhere: Storage, tenants: Tenants
) -> None:
    directory = storage.directory
    acme = hash_token(tenants.acme_token)
    assert await directory.find_caller(acme) == Caller("acme")
    await elsewhere.directory.reset_account("acme", hash_token(generate_token()))
    assert await directory.find_caller(acme) == Caller("acme")  # remembered
    await asyncio.sleep(TTL + 0.05)
    assert await directory.find_caller(acme) is None


async def test_an_unknown_token_is_remembered_as_unknown_until_the_ttl(
    storage: Storage, elsewhere: Storage, tenants: Tenants
) -> None:
    token = generate_token()
    assert await storage.directory.find_caller(hash_token(token)) is None
    await elsewhere.directory.create_account("newco", hash_token(token))
    assert await storage.directory.find_caller(hash_token(token)) is None  # remembered
    await asyncio.sleep(TTL + 0.05)
    assert await storage.directory.find_caller(hash_token(token)) == Caller("newco")


async def test_a_status_change_elsewhere_takes_effect_within_the_ttl(
    storage: Storage, elsewhere: Storage, tenants: Tenants
) -> None:
    connected = Instance("main", "acme", InstanceStatus.CONNECTED)
    assert await storage.directory.find_instance("main") == connected
    await elsewhere.directory.set_instance_status("main", InstanceStatus.DISCONNECTED)
    assert await storage.directory.find_instance("main") == connected  # remembered
    await asyncio.sleep(TTL + 0.05)
    found = await storage.directory.find_instance("main")
    assert found == Instance("main", "acme", InstanceStatus.DISCONNECTED)


async def test_writes_through_the_same_storage_are_read_at_once(
    storage: Storage, tenants: Tenants
) -> None:
    directory = storage.directory
    acme, new = hash_token(tenants.acme_token), generate_token()
    assert await directory.find_caller(acme) == Caller("acme")
    assert await directory.find_caller(hash_token(new)) is None
    await directory.reset_account("acme", hash_token(new))
    assert await directory.find_caller(acme) is None
    assert await directory.find_caller(hash_token(new)) == Caller("acme")

    assert await directory.find_instance("spare") is None
    await directory.reset_instance("spare", "acme", InstanceStatus.CONNECTED, hash_token(new))
    assert await directory.find_instance("spare") == Instance(
        "spare", "acme", InstanceStatus.CONNECTED
    )
    await directory.set_instance_status("spare", InstanceStatus.DISCONNECTED)
    found = await directory.find_instance("spare")
    assert found is not None and not found.connected


async def test_a_ttl_of_zero_turns_the_cache_off(
    settings: Settings, elsewhere: Storage, tenants: Tenants
) -> None:
    uncached = open_storage(settings.replace(cache_ttl_seconds=0))
    try:
        assert await uncached.directory.find_caller(hash_token(tenants.acme_token)) is not None
        await elsewhere.directory.reset_account("acme", hash_token(generate_token()))
        assert await uncached.directory.find_caller(hash_token(tenants.acme_token)) is None
    finally:
        await uncached.close()


async def test_a_message_chat_is_remembered_for_good(
    storage: Storage, elsewhere: Storage, tenants: Tenants
) -> None:
    assert await storage.messages.chat_of("main", MESSAGE_ID) == CHAT_JID
    # Even gone from the database (which the upstream engine never does), it is known.
    await elsewhere._database[MESSAGES].delete_one({"instance": "main", "id": MESSAGE_ID})
    await asyncio.sleep(TTL + 0.05)
    assert await storage.messages.chat_of("main", MESSAGE_ID) == CHAT_JID
    assert await elsewhere.messages.chat_of("main", MESSAGE_ID) is None
    # Per instance: the same id elsewhere is another message.
    assert await storage.messages.chat_of("rival", MESSAGE_ID) is None


async def test_a_missing_message_is_not_remembered(
    storage: Storage, elsewhere: Storage, tenants: Tenants
) -> None:
    assert await storage.messages.chat_of("main", "LATE") is None
    # The upstream engine writes it a moment later: it is found at once.
    await elsewhere.messages.upsert_many("main", [{"id": "LATE", "chat_jid": GROUP_JID}])
    assert await storage.messages.chat_of("main", "LATE") == GROUP_JID


async def test_an_import_through_the_same_storage_replaces_the_chat(
    storage: Storage, tenants: Tenants
) -> None:
    assert await storage.messages.chat_of("main", MESSAGE_ID) == CHAT_JID
    imported = iter([{"id": MESSAGE_ID, "chat_jid": GROUP_JID}])  # any iterable, read once
    assert await storage.messages.upsert_many("main", imported) == 1
    assert await storage.messages.chat_of("main", MESSAGE_ID) == GROUP_JID


async def test_each_storage_has_caches_of_its_own(
    storage: Storage, elsewhere: Storage, tenants: Tenants
) -> None:
    acme = hash_token(tenants.acme_token)
    assert await storage.directory.find_caller(acme) == Caller("acme")
    await storage.directory.reset_account("acme", hash_token(generate_token()))
    # The other storage never cached it: it reads the database, where the token is gone.
    assert await elsewhere.directory.find_caller(acme) is None


async def test_any_write_of_the_directory_clears_its_cache(
    storage: Storage, tenants: Tenants
) -> None:
    """Writes are watched at the collection, not per repository method: a write method
    added to Directory (here, a raw write through its collection) keeps the cache fresh."""
    key = hash_token(tenants.main_token)
    assert await storage.directory.find_caller(key) == Caller(account="acme", instance="main")
    await storage.directory._instances.update_one(  # type: ignore[attr-defined]
        {"name": "main"}, {"$set": {"token_hashes": ["another"]}}
    )
    assert await storage.directory.find_caller(key) is None


async def test_any_write_of_messages_clears_their_chats(storage: Storage, tenants: Tenants) -> None:
    assert await storage.messages.chat_of("main", MESSAGE_ID) == CHAT_JID
    await storage.messages._messages.update_one(  # type: ignore[attr-defined]
        {"instance": "main", "id": MESSAGE_ID}, {"$set": {"chat_jid": GROUP_JID}}
    )
    assert await storage.messages.chat_of("main", MESSAGE_ID) == GROUP_JID
