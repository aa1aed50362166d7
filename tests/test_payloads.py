"""Payloads a client cache can use (issue 10): ``record`` on ``setFavorite`` and on each
item of ``setFavorites``, Relay's ``node(id:)`` under the tenant rules, and ``instances``.

Over HTTP against the app with a real database; round trips are counted with the
session's command listener, with both drivers (``both_drivers``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, CommandLog, Tenants

from favgate.auth import generate_token, hash_token
from favgate.resolvers.favorites import now
from favgate.schema.nodes import favorite_key
from favgate.storage import FavoriteTarget, FavoriteType, Storage

RECORD_FIELDS = "__typename id type chatJid messageId favorite favoritedAt updatedAt"

SET_FAVORITE = f"""
mutation Set($instance: String!, $number: String, $messageId: String, $favorite: Boolean!) {{
  setFavorite(instance: $instance, number: $number, messageId: $messageId, favorite: $favorite) {{
    success message chatJid messageId favorite type
    record {{ {RECORD_FIELDS} }}
  }}
}}
"""

SET_FAVORITES = f"""
mutation Batch($instance: String!, $items: [FavoriteInput!]!) {{
  setFavorites(instance: $instance, items: $items) {{
    success
    ... on FavoriteResult {{ chatJid record {{ {RECORD_FIELDS} }} }}
    ... on FavoriteError {{ code }}
  }}
}}
"""

FAVORITE = f"""
query One($instance: String!, $number: String, $messageId: String) {{
  favorite(instance: $instance, number: $number, messageId: $messageId) {{ {RECORD_FIELDS} }}
}}
"""

NODE = f"""
query Node($id: ID!) {{
  node(id: $id) {{ __typename id ... on Favorite {{ {RECORD_FIELDS} message {{ text }} }} }}
}}
"""

INSTANCES = "query { instances { __typename name status } }"


async def graphql(
    client: httpx.AsyncClient, token: str | None, query: str, **variables: Any
) -> dict[str, Any]:
    headers = {"content-type": "application/json"} | ({} if token is None else {"token": token})
    # Encoded here, escaping all but ASCII, so that a lone surrogate can be sent too.
    payload = json.dumps({"query": query, "variables": variables})
    response = await client.post("/graphql", content=payload, headers=headers)
    body: dict[str, Any] = response.json()
    # 200, but 401 for a request refused for its token before anything ran.
    unauthenticated = "data" not in body and body["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )
    assert response.status_code == (401 if unauthenticated else 200), response.text
    return body


async def data(
    client: httpx.AsyncClient, token: str | None, query: str, **variables: Any
) -> dict[str, Any]:
    body = await graphql(client, token, query, **variables)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]
    return result


async def set_favorite(
    client: httpx.AsyncClient, token: str, instance: str = "main", **arguments: Any
) -> dict[str, Any]:
    answer = await data(client, token, SET_FAVORITE, instance=instance, **arguments)
    result: dict[str, Any] = answer["setFavorite"]
    return result


async def stored(client: httpx.AsyncClient, token: str, **target: Any) -> dict[str, Any] | None:
    """The record as the ``favorite`` query reads it afterwards."""
    answer = await data(client, token, FAVORITE, instance="main", **target)
    result: dict[str, Any] | None = answer["favorite"]
    return result


async def node(client: httpx.AsyncClient, token: str | None, id: str) -> Any:
    return (await data(client, token, NODE, id=id))["node"]


# --- record ---------------------------------------------------------------------------


async def test_set_favorite_returns_the_stored_record(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    result = await set_favorite(
        client, tenants.main_token, number="+55 11 99999-9999", favorite=True
    )
    # The REST-shaped fields stay as they were.
    assert {k: v for k, v in result.items() if k != "record"} == {
        "success": True,
        "message": "Chat favorited successfully",
        "chatJid": CHAT_JID,
        "messageId": None,
        "favorite": True,
        "type": "CHAT",
    }
    record = result["record"]
    assert record == await stored(client, tenants.main_token, number=CHAT_JID)
    assert (record["__typename"], record["favorite"], record["chatJid"]) == (
        "Favorite",
        True,
        CHAT_JID,
    )
    assert record["favoritedAt"] == record["updatedAt"]


async def test_record_follows_each_change_under_one_id(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    token = tenants.main_token
    on = (await set_favorite(client, token, messageId=MESSAGE_ID, favorite=True))["record"]
    again = (await set_favorite(client, token, messageId=MESSAGE_ID, favorite=True))["record"]
    assert again == on  # idempotent: nothing changed, not even the dates
    off = (await set_favorite(client, token, messageId=MESSAGE_ID, favorite=False))["record"]
    assert off["id"] == on["id"]
    assert (off["favorite"], off["favoritedAt"]) == (False, on["favoritedAt"])
    assert off["updatedAt"] > on["updatedAt"]
    assert off == await stored(client, token, messageId=MESSAGE_ID)
    assert (off["type"], off["chatJid"], off["messageId"]) == ("MESSAGE", CHAT_JID, MESSAGE_ID)


async def test_unfavoriting_what_was_never_favorited_has_no_record(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    result = await set_favorite(client, tenants.main_token, number="5511912345678", favorite=False)
    assert (result["success"], result["favorite"], result["record"]) == (True, False, None)
    assert await stored(client, tenants.main_token, number="5511912345678") is None


async def test_set_favorites_returns_each_items_record(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    token = tenants.main_token
    await set_favorite(client, token, number=GROUP_JID, favorite=True)
    items = [
        {"number": "+55 11 99999-9999", "favorite": True},
        {"messageId": MESSAGE_ID, "favorite": True},
        {"messageId": "NO-SUCH-MESSAGE", "favorite": True},
        {"number": GROUP_JID, "favorite": False},
        {"number": "5511912345678", "favorite": False},  # never favorited: no record
        {"number": "5511999999999", "favorite": True},  # the first item's chat again
    ]
    answer = await data(client, token, SET_FAVORITES, instance="main", items=items)
    chat, message, missing, group, never, chat_again = answer["setFavorites"]
    assert missing == {"success": False, "code": "NOT_FOUND"}
    assert chat["record"] == await stored(client, token, number=CHAT_JID)
    assert chat_again["record"] == chat["record"]
    assert message["record"] == await stored(client, token, messageId=MESSAGE_ID)
    assert message["record"]["messageId"] == MESSAGE_ID
    assert group["record"] == await stored(client, token, number=GROUP_JID)
    assert group["record"]["favorite"] is False
    assert never["record"] is None
    assert len({chat["record"]["id"], message["record"]["id"], group["record"]["id"]}) == 3


@pytest.mark.both_drivers
async def test_set_favorites_reads_the_records_back_in_one_query(
    commands: CommandLog, client: httpx.AsyncClient, tenants: Tenants
) -> None:
    items = [{"number": f"55119000000{i:02d}", "favorite": True} for i in range(20)]
    items.append({"messageId": MESSAGE_ID, "favorite": True})
    commands.clear()
    answer = await data(client, tenants.main_token, SET_FAVORITES, instance="main", items=items)
    assert all(outcome["record"]["favorite"] for outcome in answer["setFavorites"])
    seen = [c for c in commands.with_updates if c[1] in ("favorites", "messages")]
    # The bulk write as before, then one find for the chats and one for the messages
    # (run together), however many items.
    assert seen[:2] == [("find", "messages", 0), ("update", "favorites", 21)]
    assert seen[2:] == [("find", "favorites", 0)] * 2


@pytest.mark.both_drivers
async def test_set_favorites_of_chats_only_reads_them_back_in_one_query(
    commands: CommandLog, client: httpx.AsyncClient, tenants: Tenants
) -> None:
    items = [{"number": f"55119000000{i:02d}", "favorite": True} for i in range(5)]
    commands.clear()
    await data(client, tenants.main_token, SET_FAVORITES, instance="main", items=items)
    seen = [c for c in commands.with_updates if c[1] == "favorites"]
    assert seen == [("update", "favorites", 5), ("find", "favorites", 0)]


async def test_a_batch_records_the_message_in_the_chat_it_is_in_now(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    # A message favorited in one chat, then moved to another by an import that corrected it.
    old = FavoriteTarget(FavoriteType.MESSAGE, GROUP_JID, "MOVED1")
    before = await storage.favorites.set("main", old, True, now(), returning=True)
    assert before is not None
    await storage.messages.upsert_many("main", [{"id": "MOVED1", "chat_jid": CHAT_JID}])
    items = [{"messageId": "MOVED1", "favorite": True}]
    answer = await data(client, tenants.main_token, SET_FAVORITES, instance="main", items=items)
    [outcome] = answer["setFavorites"]
    assert (outcome["chatJid"], outcome["record"]["chatJid"]) == (CHAT_JID, CHAT_JID)
    # A record of its own, not the one left in the old chat.
    assert favorite_key(outcome["record"]["id"]) != before.id
    found = await node(client, tenants.main_token, outcome["record"]["id"])
    assert found == {**outcome["record"], "message": {"text": None}}


# --- node -------------------------------------------------------------------------------


async def test_node_finds_a_favorite_by_its_id(client: httpx.AsyncClient, tenants: Tenants) -> None:
    token = tenants.main_token
    record = (await set_favorite(client, token, messageId=MESSAGE_ID, favorite=True))["record"]
    found = await node(client, token, record["id"])
    assert found == {**record, "message": {"text": "hello"}}
    # The same id in a listing: one object to a normalized cache, wherever it was read.
    listing = await data(client, token, '{ favorites(instance: "main") { edges { node { id } } } }')
    assert [edge["node"]["id"] for edge in listing["favorites"]["edges"]] == [record["id"]]


async def test_node_ids_are_opaque_and_typed(client: httpx.AsyncClient, tenants: Tenants) -> None:
    record = (await set_favorite(client, tenants.main_token, number=CHAT_JID, favorite=True))[
        "record"
    ]
    decoded = base64.urlsafe_b64decode(record["id"] + "=" * (-len(record["id"]) % 4)).decode()
    kind, _, key = decoded.partition(":")
    assert kind == "Favorite"
    assert len(key) == 24 and all(c in "0123456789abcdef" for c in key)


@pytest.mark.parametrize(
    ("reader", "readable"),
    [
        ("acme_token", True),  # the account of the favorite's instance
        ("main_token", True),  # the favorite's own instance
        ("offline_token", False),  # another instance of the same account
        ("globex_token", False),  # another account
        ("rival_token", False),  # an instance of another account
    ],
)
async def test_node_answers_only_within_the_tenant(
    client: httpx.AsyncClient, tenants: Tenants, reader: str, readable: bool
) -> None:
    record = (await set_favorite(client, tenants.main_token, number=CHAT_JID, favorite=True))[
        "record"
    ]
    token = getattr(tenants, reader)
    body = await graphql(client, token, NODE, id=record["id"])
    if readable:
        assert body == {"data": {"node": {**record, "message": None}}}
        return
    # Exactly what a well-formed id that never existed answers.
    unknown = encoded("Favorite:" + "f" * 24)
    assert body == await graphql(client, token, NODE, id=unknown) == {"data": {"node": None}}


async def test_an_account_token_reads_the_favorites_of_all_its_instances(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    on_main = await set_favorite(client, tenants.main_token, number=CHAT_JID, favorite=True)
    # A disconnected instance takes no writes, but its records stay readable.
    target = FavoriteTarget(FavoriteType.CHAT, GROUP_JID)
    on_offline = await storage.favorites.set("offline", target, True, now(), returning=True)
    assert on_offline is not None
    listing = await data(
        client, tenants.acme_token, '{ favorites(instance: "offline") { edges { node { id } } } }'
    )
    [offline_id] = [edge["node"]["id"] for edge in listing["favorites"]["edges"]]
    assert (await node(client, tenants.acme_token, offline_id))["chatJid"] == GROUP_JID
    assert (await node(client, tenants.acme_token, on_main["record"]["id"]))["chatJid"] == CHAT_JID
    assert await node(client, tenants.main_token, offline_id) is None
    assert await node(client, tenants.offline_token, on_main["record"]["id"]) is None


def encoded(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


GARBAGE_IDS = [
    "",
    " ",
    "garbage",
    "!!!!",
    "0" * 24,  # a bare ObjectId is not a node id
    encoded("Favorite:"),
    encoded("Favorite:zzzzzzzzzzzzzzzzzzzzzzzz"),
    encoded("Favorite:ABCDEF0123456789ABCDEF01"),  # hex, but not as favgate writes it
    encoded("Favorite:0123456789abcdef0123456"),
    encoded("Message:0123456789abcdef01234567"),
    encoded("Favorite:0123456789abcdef01234567:x"),
    encoded("Favorite:0123456789abcdef01234567") + "==",
    encoded("Favorite:0123456789abcdef01234567") + "\n",
    encoded("Favorite:é"),
    # (A lone surrogate never gets this far: no JSON body holding one is read.)
    "é" * 10,
    "A" * 5000,  # far past the length of an id: refused before it is decoded
    encoded("\x00" * 50),
]


@pytest.mark.parametrize("garbage", GARBAGE_IDS)
async def test_a_malformed_id_answers_null(
    client: httpx.AsyncClient, tenants: Tenants, garbage: str
) -> None:
    assert await graphql(client, tenants.acme_token, NODE, id=garbage) == {"data": {"node": None}}


async def test_node_needs_a_valid_token_whatever_the_id(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    record = (await set_favorite(client, tenants.main_token, number=CHAT_JID, favorite=True))[
        "record"
    ]
    for token in (None, "not-a-token"):
        for id in (record["id"], "garbage"):
            body = await graphql(client, token, NODE, id=id)
            [error] = body["errors"]
            # Refused before anything ran: no data.
            assert ("data" in body, error["message"], error["extensions"]["code"]) == (
                False,
                "Invalid token",
                "UNAUTHENTICATED",
            )


async def test_node_is_relays_interface(client: httpx.AsyncClient, tenants: Tenants) -> None:
    answer = await data(
        client,
        tenants.acme_token,
        '{ __type(name: "Node") { kind fields { name type { kind ofType { name } } } '
        "possibleTypes { name } } }",
    )
    assert answer["__type"] == {
        "kind": "INTERFACE",
        "fields": [{"name": "id", "type": {"kind": "NON_NULL", "ofType": {"name": "ID"}}}],
        "possibleTypes": [{"name": "Favorite"}],
    }


# --- instances -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reader", "expected"),
    [
        ("acme_token", [("main", "CONNECTED"), ("offline", "DISCONNECTED")]),
        ("main_token", [("main", "CONNECTED")]),
        ("offline_token", [("offline", "DISCONNECTED")]),
        ("globex_token", [("rival", "CONNECTED")]),
        ("rival_token", [("rival", "CONNECTED")]),
    ],
)
async def test_instances_are_those_the_token_reaches(
    client: httpx.AsyncClient, tenants: Tenants, reader: str, expected: list[tuple[str, str]]
) -> None:
    answer = await data(client, getattr(tenants, reader), INSTANCES)
    assert answer["instances"] == [
        {"__typename": "Instance", "name": name, "status": status} for name, status in expected
    ]


async def test_instances_need_a_valid_token(client: httpx.AsyncClient, tenants: Tenants) -> None:
    body = await graphql(client, "not-a-token", INSTANCES)
    [error] = body["errors"]
    assert ("data" in body, error["extensions"]["code"]) == (False, "UNAUTHENTICATED")


async def test_an_account_without_instances_has_none(
    client: httpx.AsyncClient, storage: Storage
) -> None:
    token = generate_token()
    await storage.directory.create_account("initech", hash_token(token))
    assert (await data(client, token, INSTANCES))["instances"] == []


@pytest.mark.both_drivers
async def test_instances_cost_one_query_for_an_account_token(
    commands: CommandLog, client: httpx.AsyncClient, tenants: Tenants
) -> None:
    await data(client, tenants.acme_token, INSTANCES)  # the token is looked up and cached
    commands.clear()
    await data(client, tenants.acme_token, INSTANCES)
    assert [c for c in commands.commands if c[1] != "rate_limits"] == [("find", "instances")]
