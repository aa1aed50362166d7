"""``setFavorites``: many items in one request, one outcome per item, one bulk write.

Over HTTP against the app with a real database (the ``settings`` fixture); round trips are
counted with a pymongo command listener, with both drivers (``both_drivers``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, CommandLog, LifespanApp, Tenants

from favgate.app import create_app
from favgate.config import Settings
from favgate.resolvers import MAX_ITEMS
from favgate.storage import FavoriteFilter, FavoriteTarget, FavoriteType, Storage

SET_FAVORITES = """
mutation Batch($instance: String!, $items: [FavoriteInput!]!) {
  setFavorites(instance: $instance, items: $items) {
    __typename success message
    ... on FavoriteResult { chatJid messageId favorite type }
    ... on FavoriteError { code }
  }
}
"""

BAD_NUMBER = "Invalid number: expected a phone number of 7 to 15 digits or a WhatsApp JID"


def chat(number: str, favorite: bool = True) -> dict[str, Any]:
    return {"number": number, "favorite": favorite}


def message(message_id: str, favorite: bool = True) -> dict[str, Any]:
    return {"messageId": message_id, "favorite": favorite}


def favorited(
    chat_jid: str, message_id: str | None = None, favorite: bool = True
) -> dict[str, Any]:
    """The outcome of an item that succeeded: setFavorite's result."""
    kind = "Chat" if message_id is None else "Message"
    verb = "favorited" if favorite else "unfavorited"
    return {
        "__typename": "FavoriteResult",
        "success": True,
        "message": f"{kind} {verb} successfully",
        "chatJid": chat_jid,
        "messageId": message_id,
        "favorite": favorite,
        "type": "CHAT" if message_id is None else "MESSAGE",
    }


def failed(text: str, code: str) -> dict[str, Any]:
    return {"__typename": "FavoriteError", "success": False, "message": text, "code": code}


async def set_favorites(
    client: httpx.AsyncClient, token: str, items: list[dict[str, Any]], instance: str = "main"
) -> httpx.Response:
    variables = {"instance": instance, "items": items}
    return await client.post(
        "/graphql", json={"query": SET_FAVORITES, "variables": variables}, headers={"token": token}
    )


async def outcomes(
    client: httpx.AsyncClient, token: str, items: list[dict[str, Any]], instance: str = "main"
) -> list[dict[str, Any]]:
    response = await set_favorites(client, token, items, instance)
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body
    result: list[dict[str, Any]] = body["data"]["setFavorites"]
    return result


async def refusal(
    client: httpx.AsyncClient, token: str, items: list[dict[str, Any]], instance: str = "main"
) -> tuple[str, str]:
    """The (message, code) of a request refused as a whole."""
    body = (await set_favorites(client, token, items, instance)).json()
    assert body.get("data") is None, body  # null when it ran, absent when it could not
    [error] = body["errors"]
    return error["message"], error["extensions"]["code"]


async def current(storage: Storage, instance: str = "main") -> set[tuple[str, str, str | None]]:
    """(type, chat, message id) of the current favorites of ``instance``."""
    page = await storage.favorites.page(FavoriteFilter(instance=instance), None, 1000)
    return {(f.target.type.value, f.target.chat_jid, f.target.message_id) for f in page}


def numbers(count: int) -> list[str]:
    return [f"55119{i:08d}" for i in range(count)]


def jid(number: str) -> str:
    return f"{number}@s.whatsapp.net"


# --- outcomes ------------------------------------------------------------------------


async def test_each_item_gets_its_outcome_in_order(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    items = [
        chat("+55 11 99999-9999"),
        message(MESSAGE_ID),
        message("NOT-A-MESSAGE"),
        chat("not a number"),
        {"favorite": True},
        {"number": " ", "messageId": "", "favorite": True},
        chat(GROUP_JID, favorite=False),  # never favorited: nothing to switch off
        {"number": "not a number", "messageId": "GROUPMSG1", "favorite": True},  # id wins
        message("x" * 129),
    ]
    assert await outcomes(client, tenants.main_token, items) == [
        favorited(CHAT_JID),
        favorited(CHAT_JID, MESSAGE_ID),
        failed("Message not found", "NOT_FOUND"),
        failed(BAD_NUMBER, "BAD_USER_INPUT"),
        failed("Either number or messageId is required", "BAD_USER_INPUT"),
        failed("Either number or messageId is required", "BAD_USER_INPUT"),
        favorited(GROUP_JID, favorite=False),
        favorited(GROUP_JID, "GROUPMSG1"),
        failed("Invalid messageId: must be at most 128 characters", "BAD_USER_INPUT"),
    ]
    assert await current(storage) == {
        ("chat", CHAT_JID, None),
        ("message", CHAT_JID, MESSAGE_ID),
        ("message", GROUP_JID, "GROUPMSG1"),
    }


async def test_items_say_what_set_favorite_says(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    # The same items one by one through setFavorite, on another account's instance.
    items = [chat(CHAT_JID), message("RIVALMSG1"), message("NOPE"), chat("12")]
    batch = await outcomes(client, tenants.rival_token, items, "rival")
    for item, outcome in zip(items, batch, strict=True):
        single = await client.post(
            "/graphql",
            json={
                "query": "mutation S($n: String, $m: String) { setFavorite(instance: "
                '"rival", number: $n, messageId: $m, favorite: true) '
                "{ success message chatJid messageId favorite type } }",
                "variables": {"n": item.get("number"), "m": item.get("messageId")},
            },
            headers={"token": tenants.rival_token},
        )
        body = single.json()
        if outcome["success"]:
            assert {"__typename": "FavoriteResult", **body["data"]["setFavorite"]} == outcome
        else:
            [error] = body["errors"]
            assert (error["message"], error["extensions"]["code"]) == (
                outcome["message"],
                outcome["code"],
            )


async def test_a_batch_is_idempotent(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    items = [chat(CHAT_JID), message(MESSAGE_ID), chat(GROUP_JID, favorite=False)]
    first = await outcomes(client, tenants.main_token, items)
    records = {t: await storage.favorites.get("main", t) for t in TARGETS}
    assert await outcomes(client, tenants.main_token, items) == first
    assert {t: await storage.favorites.get("main", t) for t in TARGETS} == records
    assert await current(storage) == {("chat", CHAT_JID, None), ("message", CHAT_JID, MESSAGE_ID)}


TARGETS = [
    FavoriteTarget(type=FavoriteType.CHAT, chat_jid=CHAT_JID),
    FavoriteTarget(type=FavoriteType.MESSAGE, chat_jid=CHAT_JID, message_id=MESSAGE_ID),
    FavoriteTarget(type=FavoriteType.CHAT, chat_jid=GROUP_JID),
]


@pytest.mark.parametrize(
    ("states", "final"),
    [
        ([True, False], False),
        ([False, True], True),
        ([True, True], True),
        ([True, False, True], True),
    ],
)
async def test_the_last_item_on_a_target_decides(
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    states: list[bool],
    final: bool,
) -> None:
    # The same chat, spelled differently each time, and the same message, twice over.
    spellings = ["5511999999999", "+55 (11) 99999-9999", CHAT_JID, "5511999999999@c.us"]
    items = [chat(spelling, state) for spelling, state in zip(spellings, states, strict=False)]
    items += [message(MESSAGE_ID, state) for state in states]
    expected = [favorited(CHAT_JID, favorite=state) for state in states]
    expected += [favorited(CHAT_JID, MESSAGE_ID, state) for state in states]
    assert await outcomes(client, tenants.main_token, items) == expected
    records = [await storage.favorites.get("main", target) for target in TARGETS[:2]]
    assert [record is not None and record.favorite for record in records] == [final, final]


async def test_an_instance_error_fails_the_whole_batch(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    items = [chat(CHAT_JID)]
    assert await refusal(client, "not-a-token", items) == ("Invalid token", "UNAUTHENTICATED")
    assert await refusal(client, tenants.rival_token, items) == ("Instance not found", "NOT_FOUND")
    assert await refusal(client, tenants.main_token, items, "offline") == (
        "Instance not found",
        "NOT_FOUND",
    )
    assert await refusal(client, tenants.acme_token, items, "offline") == (
        "Instance is not connected to WhatsApp",
        "INSTANCE_NOT_CONNECTED",
    )
    assert await current(storage, "offline") == set()
    assert await current(storage) == set()


async def test_an_empty_batch_does_nothing(client: httpx.AsyncClient, tenants: Tenants) -> None:
    assert await outcomes(client, tenants.main_token, []) == []


# --- size ----------------------------------------------------------------------------


async def test_a_hundred_items_pass(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    batch = numbers(MAX_ITEMS)
    assert await outcomes(client, tenants.main_token, [chat(n) for n in batch]) == [
        favorited(jid(n)) for n in batch
    ]
    assert await current(storage) == {("chat", jid(n), None) for n in batch}


async def test_a_hundred_and_one_are_refused(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    items = [chat(n) for n in numbers(MAX_ITEMS + 1)]
    assert await refusal(client, tenants.main_token, items) == (
        "Invalid items: at most 100 items per request; got 101",
        "BAD_USER_INPUT",
    )
    assert await current(storage) == set()


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chats", "messages", "expected"),
    [
        (10, 10, [("find", "messages", 0), ("update", "favorites", 20)]),
        (10, 0, [("update", "favorites", 10)]),
        (0, 1, [("find", "messages", 0), ("update", "favorites", 1)]),
    ],
    ids=["mixed", "chats-only", "one-message"],
)
@pytest.mark.both_drivers
async def test_a_batch_costs_one_lookup_and_one_write(
    commands: CommandLog,
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    chats: int,
    messages: int,
    expected: list[tuple[str, str, int]],
) -> None:
    ids = [f"BATCHMSG{i:02d}" for i in range(messages)]
    await storage.messages.upsert_many(
        "main", [{"id": i, "chat_jid": CHAT_JID, "from_me": False} for i in ids]
    )
    items = [chat(n) for n in numbers(chats)] + [message(i) for i in ids]
    # An unknown message and a bad number cost nothing more.
    items += [message("NOT-A-MESSAGE"), chat("not a number")] if messages else []
    commands.clear()
    commands.active = True
    try:
        result = await outcomes(client, tenants.main_token, items)
    finally:
        commands.active = False
    assert sum(outcome["success"] for outcome in result) == chats + messages
    seen = commands.with_updates
    assert [c for c in seen if c[1] in ("favorites", "messages")] == expected
    # The whole batch is charged in one check of the rate limit, however many items.
    assert [c[:2] for c in seen if c[1] == "rate_limits"] == [("findAndModify", "rate_limits")]


# --- rate limit ----------------------------------------------------------------------


@pytest.fixture
async def limited_client(settings: Settings, storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings.replace(rate_limit=10))
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=LifespanApp(application, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as http:
            yield http


async def test_each_item_counts_against_the_rate_limit(
    limited_client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    first = await set_favorites(limited_client, tenants.main_token, [chat(n) for n in numbers(4)])
    assert first.headers["X-RateLimit-Remaining"] == "6"
    # Seven items when six are left: the request is refused whole, nothing is written and
    # nothing charged.
    items = [chat(n) for n in numbers(11)[4:]]
    refused = await set_favorites(limited_client, tenants.main_token, items)
    assert refused.status_code == 429
    [error] = refused.json()["errors"]
    assert (error["message"], error["extensions"]["code"]) == (
        "Rate limit exceeded. Try again later.",
        "RATE_LIMITED",
    )
    assert await current(storage) == {("chat", jid(n), None) for n in numbers(4)}
    assert refused.headers["X-RateLimit-Remaining"] == "6"
    items = [chat(n) for n in numbers(10)[4:]]
    assert len(await outcomes(limited_client, tenants.main_token, items)) == 6


@pytest.mark.both_drivers
async def test_a_target_named_many_times_is_written_once(
    commands: CommandLog, client: httpx.AsyncClient, tenants: Tenants
) -> None:
    items = [chat("5511999999999", favorite=i % 2 == 0) for i in range(5)]
    items += [message(MESSAGE_ID), message(MESSAGE_ID, favorite=False)]
    commands.clear()
    commands.active = True
    try:
        result = await outcomes(client, tenants.main_token, items)
    finally:
        commands.active = False
    assert [outcome["favorite"] for outcome in result] == [
        True,
        False,
        True,
        False,
        True,
        True,
        False,
    ]
    writes = [c for c in commands.with_updates if c[1] == "favorites"]
    assert writes == [("update", "favorites", 2)]
