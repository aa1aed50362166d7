"""The storage layer against a real server, with both drivers: indexes, the favorite
switch (idempotent, race-free), listings, messages, the directory and the write concern."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, Tenants
from pymongo import WriteConcern

from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.errors import AccountNotFound, Conflict
from favgate.storage import (
    Caller,
    Favorite,
    FavoriteFilter,
    FavoriteTarget,
    FavoriteType,
    Instance,
    InstanceStatus,
    Position,
    Storage,
    open_storage,
)
from favgate.storage.indexes import FAVORITES, INDEXES

pytestmark = pytest.mark.both_drivers

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CHAT = FavoriteTarget(FavoriteType.CHAT, CHAT_JID)
GROUP = FavoriteTarget(FavoriteType.CHAT, GROUP_JID)
MESSAGE = FavoriteTarget(FavoriteType.MESSAGE, CHAT_JID, MESSAGE_ID)


def at(seconds: float) -> datetime:
    """A time BSON stores exactly (milliseconds), ``seconds`` after T0."""
    return T0 + timedelta(milliseconds=round(seconds * 1000))


async def records(storage: Storage, **query: Any) -> list[dict[str, Any]]:
    return [doc async for doc in storage._database[FAVORITES].find(query)]


# --- Indexes ------------------------------------------------------------------------------


async def test_indexes_exist(storage: Storage) -> None:
    for collection, models in INDEXES.items():
        found = await storage._database[collection].index_information()
        for model in models:
            wanted = model.document
            assert wanted["name"] in found, (collection, wanted["name"])
            index = found[wanted["name"]]
            assert index["key"] == list(wanted["key"].items())
            assert bool(index.get("unique")) is bool(wanted.get("unique")), wanted["name"]
        assert set(found) == {"_id_", *(model.document["name"] for model in models)}


def test_unique_indexes_are_the_expected_ones() -> None:
    unique = {
        (collection, model.document["name"])
        for collection, models in INDEXES.items()
        for model in models
        if model.document.get("unique")
    }
    assert unique == {
        ("accounts", "name_unique"),
        ("accounts", "token_hashes_unique"),
        ("instances", "name_unique"),
        ("instances", "token_hashes_unique"),
        ("messages", "id_unique"),
        ("favorites", "target_unique"),
    }


async def test_ensure_indexes_twice_is_fine(storage: Storage) -> None:
    before = await storage._database[FAVORITES].index_information()
    await storage.ensure_indexes()
    await storage.ensure_indexes()
    assert await storage._database[FAVORITES].index_information() == before


# --- Favorites.set ------------------------------------------------------------------------


async def test_favorite_creates_a_record(storage: Storage) -> None:
    assert await storage.favorites.get("main", CHAT) is None
    await storage.favorites.set("main", CHAT, True, at(0))
    record = await storage.favorites.get("main", CHAT)
    assert record is not None
    assert (record.instance, record.target, record.favorite) == ("main", CHAT, True)
    assert record.favorited_at == record.updated_at == at(0)
    assert record.favorited_at.tzinfo is not None


async def test_repeating_a_favorite_changes_nothing(storage: Storage) -> None:
    await storage.favorites.set("main", CHAT, True, at(0))
    before = await records(storage)
    await storage.favorites.set("main", CHAT, True, at(5))
    await storage.favorites.set("main", CHAT, True, at(6))
    assert await records(storage) == before
    record = await storage.favorites.get("main", CHAT)
    assert record is not None
    assert record.favorited_at == record.updated_at == at(0)


async def test_unfavorite_keeps_the_record_switched_off(storage: Storage) -> None:
    await storage.favorites.set("main", CHAT, True, at(0))
    await storage.favorites.set("main", CHAT, False, at(3))
    record = await storage.favorites.get("main", CHAT)
    assert record is not None
    assert record.favorite is False
    assert record.favorited_at == at(0)
    assert record.updated_at == at(3)
    # Unfavoriting again is a no-op: updated_at stays at the real change.
    await storage.favorites.set("main", CHAT, False, at(9))
    assert await storage.favorites.get("main", CHAT) == record


async def test_unfavorite_of_a_missing_target_writes_nothing(storage: Storage) -> None:
    await storage.favorites.set("main", CHAT, False, at(0))
    await storage.favorites.set("main", MESSAGE, False, at(0))
    assert await storage.favorites.get("main", CHAT) is None
    assert await storage.favorites.get_message("main", MESSAGE_ID) is None
    assert await records(storage) == []


async def test_refavorite_after_unfavorite_advances_favorited_at(storage: Storage) -> None:
    await storage.favorites.set("main", MESSAGE, True, at(0))
    first = await storage.favorites.get_message("main", MESSAGE_ID)
    await storage.favorites.set("main", MESSAGE, False, at(1))
    await storage.favorites.set("main", MESSAGE, True, at(2))
    record = await storage.favorites.get_message("main", MESSAGE_ID)
    assert first is not None and record is not None
    assert record.id == first.id  # the same record, switched back on
    assert record.favorite is True
    assert record.favorited_at == record.updated_at == at(2)
    assert len(await records(storage)) == 1


async def test_targets_are_independent(storage: Storage) -> None:
    """A chat, a message of that chat, and the same chat on another instance are three
    records."""
    await storage.favorites.set("main", CHAT, True, at(0))
    await storage.favorites.set("main", MESSAGE, True, at(1))
    await storage.favorites.set("rival", CHAT, True, at(2))
    await storage.favorites.set("main", CHAT, False, at(3))
    assert len(await records(storage)) == 3
    message = await storage.favorites.get("main", MESSAGE)
    assert message is not None and message.favorite is True
    assert message == await storage.favorites.get_message("main", MESSAGE_ID)
    rival = await storage.favorites.get("rival", CHAT)
    assert rival is not None and rival.favorite is True
    assert await storage.favorites.get_message("rival", MESSAGE_ID) is None


async def test_concurrent_identical_favorites_make_one_record(storage: Storage) -> None:
    now = at(0)
    await asyncio.gather(*(storage.favorites.set("main", CHAT, True, now) for _ in range(30)))
    docs = await records(storage)
    assert len(docs) == 1
    assert docs[0]["favorite"] is True


async def test_concurrent_favorites_each_return_the_one_record(storage: Storage) -> None:
    found = await asyncio.gather(
        *(storage.favorites.set("main", CHAT, True, at(0), returning=True) for _ in range(30))
    )
    assert len(await records(storage)) == 1
    assert found == [await storage.favorites.get("main", CHAT)] * 30


async def test_concurrent_refavorites_make_one_record(storage: Storage) -> None:
    await storage.favorites.set("main", MESSAGE, True, at(0))
    await storage.favorites.set("main", MESSAGE, False, at(1))
    await asyncio.gather(
        *(storage.favorites.set("main", MESSAGE, True, at(2 + i / 1000)) for i in range(30))
    )
    docs = await records(storage)
    assert len(docs) == 1
    assert docs[0]["favorite"] is True


# --- Listings -----------------------------------------------------------------------------

C1 = FavoriteTarget(FavoriteType.CHAT, "1@s.whatsapp.net")
C2 = FavoriteTarget(FavoriteType.CHAT, "2@s.whatsapp.net")
C3 = FavoriteTarget(FavoriteType.CHAT, "3@s.whatsapp.net")
M1 = FavoriteTarget(FavoriteType.MESSAGE, C1.chat_jid, "M1")
M2 = FavoriteTarget(FavoriteType.MESSAGE, C2.chat_jid, "M2")
M3 = FavoriteTarget(FavoriteType.MESSAGE, C1.chat_jid, "M3")


@pytest.fixture
async def listed(storage: Storage) -> Storage:
    """main: C1 at 0, C2 at 1, M1 and M2 both at 2 (a tie), M3 at 3; C3 favorited at 4
    then switched off; rival has a favorite too."""
    favorites = storage.favorites
    await favorites.set("main", C1, True, at(0))
    await favorites.set("main", C2, True, at(1))
    await favorites.set("main", M1, True, at(2))
    await favorites.set("main", M2, True, at(2))
    await favorites.set("main", M3, True, at(3))
    await favorites.set("main", C3, True, at(4))
    await favorites.set("main", C3, False, at(5))
    await favorites.set("rival", C1, True, at(6))
    return storage


def targets(favorites: list[Favorite]) -> list[FavoriteTarget]:
    return [favorite.target for favorite in favorites]


def assert_newest_first(favorites: list[Favorite]) -> None:
    keys = [(favorite.favorited_at, favorite.id) for favorite in favorites]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("type", "chat", "expected"),
    [
        (None, None, [M3, {M1, M2}, C2, C1]),
        (FavoriteType.CHAT, None, [C2, C1]),
        (FavoriteType.MESSAGE, None, [M3, {M1, M2}]),
        (None, C1.chat_jid, [M3, M1, C1]),
        (FavoriteType.CHAT, C1.chat_jid, [C1]),
        (FavoriteType.MESSAGE, C2.chat_jid, [M2]),
        (None, C3.chat_jid, []),
        (None, "nobody@s.whatsapp.net", []),
    ],
)
async def test_page_and_count_with_filters(
    listed: Storage,
    type: FavoriteType | None,
    chat: str | None,
    expected: list[FavoriteTarget | set[FavoriteTarget]],
) -> None:
    where = FavoriteFilter("main", type=type, chat_jid=chat)
    page = await listed.favorites.page(where, None, 100)
    assert_newest_first(page)
    assert all(favorite.favorite and favorite.instance == "main" for favorite in page)
    found = targets(page)
    # The tie at 2 s is broken by id, which the test does not predict: a set is any order.
    groups = [item if isinstance(item, set) else {item} for item in expected]
    assert len(found) == sum(len(group) for group in groups)
    start = 0
    for group in groups:
        assert set(found[start : start + len(group)]) == group
        start += len(group)
    assert await listed.favorites.count(where) == len(found)


async def test_switched_off_and_other_instances_are_not_listed(listed: Storage) -> None:
    assert C3 not in targets(await listed.favorites.page(FavoriteFilter("main"), None, 100))
    rival = await listed.favorites.page(FavoriteFilter("rival"), None, 100)
    assert targets(rival) == [C1]
    assert await listed.favorites.count(FavoriteFilter("nowhere")) == 0


@pytest.mark.parametrize("size", [1, 2, 3])
async def test_pages_walk_the_listing_without_gaps_or_repeats(listed: Storage, size: int) -> None:
    where = FavoriteFilter("main")
    everything = await listed.favorites.page(where, None, 100)
    walked: list[Favorite] = []
    after: Position | None = None
    while page := await listed.favorites.page(where, after, size):
        assert len(page) <= size
        walked += page
        after = Position(favorited_at=page[-1].favorited_at, id=page[-1].id)
    assert walked == everything
    assert len(walked) == 5


async def test_page_limit(listed: Storage) -> None:
    where = FavoriteFilter("main")
    assert len(await listed.favorites.page(where, None, 2)) == 2
    assert await listed.favorites.page(where, None, 0) == []


# --- Messages -----------------------------------------------------------------------------


async def test_get_many_with_duplicates_and_missing_ids(storage: Storage, tenants: Tenants) -> None:
    found = await storage.messages.get_many(
        "main", [MESSAGE_ID, "missing", MESSAGE_ID, "GROUPMSG1", "RIVALMSG1", MESSAGE_ID]
    )
    assert set(found) == {MESSAGE_ID, "GROUPMSG1"}
    message = found[MESSAGE_ID]
    assert (message.instance, message.id, message.chat_jid) == ("main", MESSAGE_ID, CHAT_JID)
    assert (message.from_me, message.text, message.timestamp) == (False, "hello", None)
    assert found["GROUPMSG1"].from_me is True
    assert await storage.messages.get_many("main", []) == {}
    assert await storage.messages.get_many("main", iter(["missing"])) == {}
    assert set(await storage.messages.get_many("rival", [MESSAGE_ID, "RIVALMSG1"])) == {"RIVALMSG1"}


async def test_get(storage: Storage, tenants: Tenants) -> None:
    message = await storage.messages.get("main", MESSAGE_ID)
    assert message is not None and message.chat_jid == CHAT_JID
    assert await storage.messages.get("rival", MESSAGE_ID) is None
    assert await storage.messages.get("main", "missing") is None


async def test_upsert_many_keeps_unknown_fields_and_updates(storage: Storage) -> None:
    stamp = at(0)
    sent = await storage.messages.upsert_many(
        "main",
        [
            {"id": "A", "chat_jid": CHAT_JID, "text": "first", "engine": {"status": 3}},
            {"id": "B", "chat_jid": GROUP_JID, "from_me": True, "timestamp": stamp},
            # The argument names the instance, whatever the message says.
            {"id": "C", "chat_jid": CHAT_JID, "instance": "rival"},
        ],
    )
    assert sent == 3
    assert await storage.messages.upsert_many("main", []) == 0
    sent = await storage.messages.upsert_many(
        "main", [{"id": "A", "chat_jid": CHAT_JID, "text": "edited", "edited": True}]
    )
    assert sent == 1
    docs = {doc["id"]: doc async for doc in storage._database["messages"].find({}, {"_id": 0})}
    assert docs == {
        "A": {
            "instance": "main",
            "id": "A",
            "chat_jid": CHAT_JID,
            "text": "edited",
            "engine": {"status": 3},
            "edited": True,
        },
        "B": {
            "instance": "main",
            "id": "B",
            "chat_jid": GROUP_JID,
            "from_me": True,
            "timestamp": stamp,
        },
        "C": {"instance": "main", "id": "C", "chat_jid": CHAT_JID},
    }
    b = await storage.messages.get("main", "B")
    assert b is not None and b.timestamp == stamp and b.text is None


# --- Directory ----------------------------------------------------------------------------


async def test_create_account_and_instance(storage: Storage) -> None:
    account, instance = generate_token(), generate_token()
    directory = storage.directory
    await directory.create_account("initech", hash_token(account))
    await directory.create_instance(
        "tps", "initech", InstanceStatus.CONNECTED, hash_token(instance)
    )
    assert await directory.find_caller(hash_token(account)) == Caller("initech")
    assert await directory.find_caller(hash_token(instance)) == Caller("initech", "tps")
    assert await directory.find_caller(hash_token("unknown")) is None
    assert await directory.find_instance("tps") == Instance(
        "tps", "initech", InstanceStatus.CONNECTED
    )
    assert await directory.find_instance("nope") is None


async def test_duplicates_conflict(storage: Storage, tenants: Tenants) -> None:
    directory = storage.directory
    with pytest.raises(Conflict, match="acme"):
        await directory.create_account("acme", hash_token(generate_token()))
    with pytest.raises(Conflict, match="main"):
        await directory.create_instance(
            "main", "globex", InstanceStatus.CONNECTED, hash_token(generate_token())
        )
    # The failed attempts changed nothing.
    assert await directory.find_instance("main") == Instance(
        "main", "acme", InstanceStatus.CONNECTED
    )
    assert await directory.find_caller(hash_token(tenants.acme_token)) == Caller("acme")


async def test_instance_needs_an_existing_account(storage: Storage) -> None:
    with pytest.raises(AccountNotFound):
        await storage.directory.create_instance(
            "orphan", "nobody", InstanceStatus.CONNECTED, hash_token(generate_token())
        )
    assert await storage.directory.find_instance("orphan") is None


async def test_set_instance_status(storage: Storage, tenants: Tenants) -> None:
    directory = storage.directory
    assert await directory.set_instance_status("main", InstanceStatus.DISCONNECTED) is True
    main = await directory.find_instance("main")
    assert main is not None and not main.connected
    assert await directory.set_instance_status("main", InstanceStatus.CONNECTED) is True
    main = await directory.find_instance("main")
    assert main is not None and main.connected
    assert await directory.set_instance_status("nope", InstanceStatus.CONNECTED) is False
    assert await directory.find_instance("nope") is None


async def test_reset_account_rotates_its_token(storage: Storage, tenants: Tenants) -> None:
    new = generate_token()
    await storage.directory.reset_account("acme", hash_token(new))
    assert await storage.directory.find_caller(hash_token(tenants.acme_token)) is None
    assert await storage.directory.find_caller(hash_token(new)) == Caller("acme")
    # Its instances and their tokens are untouched.
    assert await storage.directory.find_caller(hash_token(tenants.main_token)) == Caller(
        "acme", "main"
    )
    assert await storage._database["accounts"].count_documents({"name": "acme"}) == 1


async def test_reset_account_creates_a_missing_account(storage: Storage) -> None:
    token = generate_token()
    await storage.directory.reset_account("newco", hash_token(token))
    assert await storage.directory.find_caller(hash_token(token)) == Caller("newco")
    doc = await storage._database["accounts"].find_one({"name": "newco"})
    assert doc is not None and doc["token_hashes"] == [hash_token(token)]
    assert isinstance(doc["created_at"], datetime)


async def test_reset_instance_rotates_its_token(storage: Storage, tenants: Tenants) -> None:
    new = generate_token()
    await storage.directory.reset_instance(
        "main", "acme", InstanceStatus.DISCONNECTED, hash_token(new)
    )
    assert await storage.directory.find_caller(hash_token(tenants.main_token)) is None
    assert await storage.directory.find_caller(hash_token(new)) == Caller("acme", "main")
    assert await storage.directory.find_instance("main") == Instance(
        "main", "acme", InstanceStatus.DISCONNECTED
    )
    assert await storage._database["instances"].count_documents({"name": "main"}) == 1


async def test_reset_instance_creates_a_missing_instance(
    storage: Storage, tenants: Tenants
) -> None:
    token = generate_token()
    await storage.directory.reset_instance(
        "spare", "acme", InstanceStatus.CONNECTED, hash_token(token)
    )
    assert await storage.directory.find_caller(hash_token(token)) == Caller("acme", "spare")
    assert await storage.directory.find_instance("spare") == Instance(
        "spare", "acme", InstanceStatus.CONNECTED
    )


# --- Write concern ------------------------------------------------------------------------


@pytest.fixture
async def majority(settings: Settings) -> AsyncIterator[Storage]:
    storage = open_storage(settings.replace(write_concern_w="majority"))
    try:
        yield storage
    finally:
        await storage.drop_database()
        await storage.close()


async def test_writes_are_journaled_by_default(storage: Storage) -> None:
    assert Settings().write_concern_w == 1 and Settings().write_journal is True
    assert storage._database.write_concern == WriteConcern(w=1, j=True)
    assert storage._database.write_concern.acknowledged
    # The repositories' collections inherit it.
    assert storage.favorites._favorites.write_concern == WriteConcern(w=1, j=True)
    assert storage.directory._accounts.write_concern == WriteConcern(w=1, j=True)


async def test_majority_write_concern_is_honoured(majority: Storage) -> None:
    assert majority._database.write_concern.document == {"w": "majority", "j": True}
    assert majority.messages._messages.write_concern.document == {"w": "majority", "j": True}
    # The server accepts it.
    await majority.ensure_indexes()
    await majority.favorites.set("main", CHAT, True, at(0))
    assert await majority.favorites.get("main", CHAT) is not None


async def test_unjournaled_write_concern(settings: Settings) -> None:
    storage = open_storage(settings.replace(write_concern_w=2, write_journal=False))
    try:
        assert storage._database.write_concern.document == {"w": 2, "j": False}
    finally:
        await storage.close()


async def test_database_name_comes_from_settings(settings: Settings, storage: Storage) -> None:
    assert storage._database.name == settings.database
    await storage.ping()


async def test_open_storage_needs_a_uri() -> None:
    with pytest.raises(ValueError, match="mongodb_uri"):
        open_storage(Settings(database=f"unused_{uuid.uuid4().hex[:6]}"))
