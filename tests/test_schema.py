"""The GraphQL schema: over HTTP against the app with a real database, and without HTTP.

Tests run with one driver (the ``settings`` fixture); the round trips counted over the wire,
with both (``both_drivers``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from graphql import GraphQLNamedType, GraphQLObjectType, build_schema
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, CommandLog, Tenants

from favgate.auth import generate_token
from favgate.schema import build_context, schema
from favgate.schema.nodes import favorite_key
from favgate.storage import FavoriteFilter, FavoriteTarget, FavoriteType, Storage

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"

SET_FAVORITE = """
mutation Set($instance: String!, $number: String, $messageId: String, $favorite: Boolean!) {
  setFavorite(instance: $instance, number: $number, messageId: $messageId, favorite: $favorite) {
    success message chatJid messageId favorite type
  }
}
"""

FAVORITE = """
query One($instance: String!, $number: String, $messageId: String) {
  favorite(instance: $instance, number: $number, messageId: $messageId) {
    id type chatJid messageId favorite favoritedAt updatedAt
    message { id chatJid fromMe timestamp text }
  }
}
"""

FAVORITES = """
query List(
  $instance: String!, $type: FavoriteType, $chatJid: String, $first: Int, $after: String
) {
  favorites(instance: $instance, type: $type, chatJid: $chatJid, first: $first, after: $after) {
    totalCount
    edges { cursor node { id type chatJid messageId favorite } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

INVALID_TOKEN = ("Invalid token", "UNAUTHENTICATED")
INSTANCE_NOT_FOUND = ("Instance not found", "NOT_FOUND")
MESSAGE_NOT_FOUND = ("Message not found", "NOT_FOUND")
TARGET_REQUIRED = ("Either number or messageId is required", "BAD_USER_INPUT")
NOT_CONNECTED = ("Instance is not connected to WhatsApp", "INSTANCE_NOT_CONNECTED")
BAD_NUMBER = (
    "Invalid number: expected a phone number of 7 to 15 digits or a WhatsApp JID",
    "BAD_USER_INPUT",
)
INVALID_CURSOR = ("Invalid cursor", "BAD_USER_INPUT")

Key = tuple[str, str, str | None]  # (type, chatJid, messageId) of a favorite


# --- helpers --------------------------------------------------------------------------


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON body of a GraphQL request: 200 even with errors (application/json), but
    401 without a valid token, which nothing runs for."""
    sent = dict(headers or {})
    if token is not None:
        sent["token"] = token
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
    )
    body: dict[str, Any] = response.json()
    unauthenticated = body.get("errors", [{}])[0].get("extensions", {}).get("code")
    expected = 401 if unauthenticated == "UNAUTHENTICATED" else 200
    assert response.status_code == expected, response.text
    return body


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    """The (message, code) of the response's only error."""
    assert len(body.get("errors", [])) == 1, body
    error = body["errors"][0]
    return error["message"], error["extensions"]["code"]


async def set_favorite(
    client: httpx.AsyncClient,
    token: str | None,
    instance: str = "main",
    *,
    favorite: bool = True,
    **target: str | None,
) -> dict[str, Any]:
    variables = {"instance": instance, "favorite": favorite, **target}
    return await post(client, SET_FAVORITE, variables, token=token)


async def favorite_record(
    client: httpx.AsyncClient, token: str | None, instance: str = "main", **target: str | None
) -> dict[str, Any]:
    return await post(client, FAVORITE, {"instance": instance, **target}, token=token)


async def favorites_page(
    client: httpx.AsyncClient, token: str | None, instance: str = "main", **arguments: Any
) -> dict[str, Any]:
    return await post(client, FAVORITES, {"instance": instance, **arguments}, token=token)


async def page_of(
    client: httpx.AsyncClient, token: str, instance: str = "main", **arguments: Any
) -> dict[str, Any]:
    connection: dict[str, Any] = data_of(
        await favorites_page(client, token, instance, **arguments)
    )["favorites"]
    return connection


def keys_of(connection: dict[str, Any]) -> list[Key]:
    return [
        (edge["node"]["type"], edge["node"]["chatJid"], edge["node"]["messageId"])
        for edge in connection["edges"]
    ]


async def walk(
    client: httpx.AsyncClient, token: str, first: int, **filters: Any
) -> list[dict[str, Any]]:
    """Every page of a listing, following endCursor until hasNextPage is false."""
    pages = [await page_of(client, token, first=first, **filters)]
    while pages[-1]["pageInfo"]["hasNextPage"]:
        after = pages[-1]["pageInfo"]["endCursor"]
        pages.append(await page_of(client, token, first=first, after=after, **filters))
        assert len(pages) < 50, "the walk does not end"
    return pages


def now_ms() -> datetime:
    """Now, truncated to BSON's milliseconds like the timestamps favgate stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def current_favorites(storage: Storage) -> dict[str, int]:
    instances = ("main", "offline", "rival")
    return {
        name: await storage.favorites.count(FavoriteFilter(instance=name)) for name in instances
    }


def chat_result(chat_jid: str, favorite: bool = True) -> dict[str, Any]:
    verb = "favorited" if favorite else "unfavorited"
    return {
        "success": True,
        "message": f"Chat {verb} successfully",
        "chatJid": chat_jid,
        "messageId": None,
        "favorite": favorite,
        "type": "CHAT",
    }


def message_result(chat_jid: str, message_id: str, favorite: bool = True) -> dict[str, Any]:
    verb = "favorited" if favorite else "unfavorited"
    return {
        "success": True,
        "message": f"Message {verb} successfully",
        "chatJid": chat_jid,
        "messageId": message_id,
        "favorite": favorite,
        "type": "MESSAGE",
    }


# --- the committed SDL ----------------------------------------------------------------


def test_committed_schema_is_up_to_date() -> None:
    assert schema.as_str().strip() == SCHEMA_FILE.read_text().strip(), (
        "schema.graphql differs from the live schema (favgate.schema); "
        "regenerate it with: favgate schema > schema.graphql"
    )


ISSUE_SDL = """
scalar DateTime
enum FavoriteType { CHAT MESSAGE }
type FavoriteResult { success: Boolean! message: String! chatJid: String! messageId: String
  favorite: Boolean! type: FavoriteType! }
type Favorite { id: ID! type: FavoriteType! chatJid: String! messageId: String
  favorite: Boolean! favoritedAt: DateTime! updatedAt: DateTime! message: Message }
type Message { id: String! chatJid: String! fromMe: Boolean! timestamp: DateTime text: String }
type FavoriteConnection { totalCount: Int! edges: [FavoriteEdge!]! pageInfo: PageInfo! }
type FavoriteEdge { cursor: String! node: Favorite! }
type PageInfo { hasNextPage: Boolean! endCursor: String }
type Query {
  favorites(instance: String!, type: FavoriteType, chatJid: String, first: Int = 20,
    after: String): FavoriteConnection!
  favorite(instance: String!, number: String, messageId: String): Favorite
}
type Mutation {
  setFavorite(instance: String!, number: String, messageId: String,
    favorite: Boolean!): FavoriteResult!
}
"""


def shape(named: GraphQLNamedType) -> object:
    """A type's fields with their types and arguments' types, ignoring descriptions."""
    if not isinstance(named, GraphQLObjectType):
        return str(named)
    return {
        name: (str(f.type), {arg: str(a.type) for arg, a in f.args.items()})
        for name, f in named.fields.items()
    }


def test_schema_has_the_issue_sdl() -> None:
    required = build_schema(ISSUE_SDL)
    live = build_schema(schema.as_str())
    for name, named in required.type_map.items():
        if name.startswith("__"):
            continue
        live_shape, required_shape = shape(live.type_map[name]), shape(named)
        if isinstance(required_shape, dict):
            # Later issues add fields (setFavorites); the required ones stay as they are.
            assert isinstance(live_shape, dict), name
            live_shape = {field: live_shape.get(field) for field in required_shape}
        assert live_shape == required_shape, name
    defaults = schema.execute_sync(
        '{ __type(name: "Query") { fields { name args { name defaultValue } } } }'
    )
    assert defaults.errors is None
    assert defaults.data is not None
    [favorites] = [f for f in defaults.data["__type"]["fields"] if f["name"] == "favorites"]
    assert {a["name"]: a["defaultValue"] for a in favorites["args"]}["first"] == "20"


def test_names_are_converted_once() -> None:
    """Strawberry converts argument names on every resolver call: the schema's converter
    keeps each conversion (favgate.schema.names), with Strawberry's own answers."""
    converter = schema.config.name_converter
    assert converter.apply_naming_config("message_id") == "messageId"
    assert converter.apply_naming_config("message_id") is converter.apply_naming_config(
        "message_id"
    )
    converter.auto_camel_case = False
    try:
        assert converter.apply_naming_config("message_id") == "message_id"
    finally:
        converter.auto_camel_case = True
    assert converter.apply_naming_config("message_id") == "messageId"


# --- setFavorite ----------------------------------------------------------------------


async def test_set_favorite_chat(client: httpx.AsyncClient, tenants: Tenants) -> None:
    body = await set_favorite(client, tenants.main_token, number="+55 (11) 99999-9999")
    assert data_of(body) == {"setFavorite": chat_result(CHAT_JID)}


async def test_set_favorite_group_chat(client: httpx.AsyncClient, tenants: Tenants) -> None:
    body = await set_favorite(client, tenants.acme_token, number=GROUP_JID)
    assert data_of(body) == {"setFavorite": chat_result(GROUP_JID)}


async def test_set_favorite_message(client: httpx.AsyncClient, tenants: Tenants) -> None:
    body = await set_favorite(client, tenants.main_token, messageId=MESSAGE_ID)
    assert data_of(body) == {"setFavorite": message_result(CHAT_JID, MESSAGE_ID)}


async def test_message_id_takes_precedence_over_number(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    body = await set_favorite(client, tenants.main_token, number=CHAT_JID, messageId="GROUPMSG1")
    # The chat is the message's own, not the number's.
    assert data_of(body) == {"setFavorite": message_result(GROUP_JID, "GROUPMSG1")}
    chat = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=CHAT_JID)
    assert await storage.favorites.get("main", chat) is None


async def test_unfavorite_chat_and_message(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.main_token
    await set_favorite(client, token, number=CHAT_JID)
    await set_favorite(client, token, messageId=MESSAGE_ID)

    body = await set_favorite(client, token, number="5511999999999", favorite=False)
    assert data_of(body) == {"setFavorite": chat_result(CHAT_JID, favorite=False)}
    body = await set_favorite(client, token, messageId=MESSAGE_ID, favorite=False)
    assert data_of(body) == {"setFavorite": message_result(CHAT_JID, MESSAGE_ID, favorite=False)}
    assert await current_favorites(storage) == {"main": 0, "offline": 0, "rival": 0}


async def test_unfavorite_what_was_never_favorited(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    body = await set_favorite(client, tenants.main_token, number=CHAT_JID, favorite=False)
    assert data_of(body) == {"setFavorite": chat_result(CHAT_JID, favorite=False)}
    # No record is made: "never favorited" stays distinguishable from "unfavorited".
    assert data_of(await favorite_record(client, tenants.main_token, number=CHAT_JID)) == {
        "favorite": None
    }


async def test_set_favorite_is_idempotent(client: httpx.AsyncClient, tenants: Tenants) -> None:
    token = tenants.main_token
    first = await set_favorite(client, token, messageId=MESSAGE_ID)
    before = data_of(await favorite_record(client, token, messageId=MESSAGE_ID))
    again = await set_favorite(client, token, messageId=MESSAGE_ID)
    after = data_of(await favorite_record(client, token, messageId=MESSAGE_ID))
    assert again == first
    assert after == before  # neither favoritedAt nor updatedAt moved
    assert (await page_of(client, token))["totalCount"] == 1


@pytest.mark.parametrize(
    "template",
    [
        pytest.param({"token": "{token}"}, id="token"),
        pytest.param({"Authorization": "{token}"}, id="authorization-bare"),
        pytest.param({"Authorization": "Bearer {token}"}, id="authorization-bearer"),
        pytest.param({"authorization": "bearer  {token} "}, id="authorization-bearer-lowercase"),
        pytest.param(
            {"token": " ", "Authorization": "Bearer {token}"}, id="blank-token-then-authorization"
        ),
    ],
)
async def test_token_headers(
    client: httpx.AsyncClient, tenants: Tenants, template: dict[str, str]
) -> None:
    headers = {name: value.format(token=tenants.main_token) for name, value in template.items()}
    variables = {"instance": "main", "number": CHAT_JID, "favorite": True}
    body = await post(client, SET_FAVORITE, variables, headers=headers)
    assert data_of(body) == {"setFavorite": chat_result(CHAT_JID)}


# --- setFavorite errors ---------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    token: str  # a Tenants field, "unknown" or "none"
    variables: dict[str, Any]
    error: tuple[str, str]
    headers: dict[str, str] = field(default_factory=dict)


def token_for(tenants: Tenants, name: str) -> str | None:
    if name == "none":
        return None
    if name == "unknown":
        return generate_token()
    token: str = getattr(tenants, f"{name}_token")
    return token


CHAT = {"number": CHAT_JID, "favorite": True}

ERROR_CASES = {
    "missing-token": Case("none", {"instance": "main", **CHAT}, INVALID_TOKEN),
    "unknown-token": Case("unknown", {"instance": "main", **CHAT}, INVALID_TOKEN),
    "unknown-bearer-token": Case(
        "none",
        {"instance": "main", **CHAT},
        INVALID_TOKEN,
        headers={"Authorization": f"Bearer {generate_token()}"},
    ),
    "bearer-without-token": Case(
        "none", {"instance": "main", **CHAT}, INVALID_TOKEN, headers={"Authorization": "Bearer"}
    ),
    "overlong-token": Case(
        "none", {"instance": "main", **CHAT}, INVALID_TOKEN, headers={"token": "x" * 10_000}
    ),
    "bad-token-before-unknown-instance": Case(
        "unknown", {"instance": "ghost", "favorite": True}, INVALID_TOKEN
    ),
    "empty-instance": Case(
        "acme", {"instance": " ", **CHAT}, ("Instance name is required", "BAD_USER_INPUT")
    ),
    "nonexistent-instance": Case("acme", {"instance": "ghost", **CHAT}, INSTANCE_NOT_FOUND),
    "other-accounts-instance": Case("globex", {"instance": "main", **CHAT}, INSTANCE_NOT_FOUND),
    "other-accounts-instance-token": Case(
        "rival", {"instance": "main", **CHAT}, INSTANCE_NOT_FOUND
    ),
    "sibling-instance": Case("offline", {"instance": "main", **CHAT}, INSTANCE_NOT_FOUND),
    "instance-before-target": Case(
        "globex", {"instance": "main", "favorite": True}, INSTANCE_NOT_FOUND
    ),
    "unknown-message": Case(
        "main", {"instance": "main", "messageId": "NOPE", "favorite": True}, MESSAGE_NOT_FOUND
    ),
    "other-instances-message": Case(
        "acme", {"instance": "main", "messageId": "RIVALMSG1", "favorite": True}, MESSAGE_NOT_FOUND
    ),
    "unknown-message-unfavorite": Case(
        "main", {"instance": "main", "messageId": "NOPE", "favorite": False}, MESSAGE_NOT_FOUND
    ),
    "neither-target": Case("main", {"instance": "main", "favorite": True}, TARGET_REQUIRED),
    "null-targets": Case(
        "main",
        {"instance": "main", "number": None, "messageId": None, "favorite": True},
        TARGET_REQUIRED,
    ),
    "blank-targets": Case(
        "main",
        {"instance": "main", "number": "  ", "messageId": "", "favorite": False},
        TARGET_REQUIRED,
    ),
    "bad-number": Case(
        "main", {"instance": "main", "number": "not-a-number", "favorite": True}, BAD_NUMBER
    ),
    "short-number": Case(
        "main", {"instance": "main", "number": "123456", "favorite": True}, BAD_NUMBER
    ),
    "bad-jid": Case(
        "main",
        {"instance": "main", "number": "5511999999999@example.com", "favorite": True},
        ("Invalid number: unsupported JID server @example.com", "BAD_USER_INPUT"),
    ),
    "overlong-message-id": Case(
        "main",
        {"instance": "main", "messageId": "M" * 129, "favorite": True},
        ("Invalid messageId: must be at most 128 characters", "BAD_USER_INPUT"),
    ),
    "disconnected": Case("offline", {"instance": "offline", **CHAT}, NOT_CONNECTED),
    "disconnected-account-token": Case("acme", {"instance": "offline", **CHAT}, NOT_CONNECTED),
    "disconnected-unfavorite": Case(
        "offline", {"instance": "offline", "number": CHAT_JID, "favorite": False}, NOT_CONNECTED
    ),
    "disconnected-before-message-lookup": Case(
        "offline",
        {"instance": "offline", "messageId": "NOPE", "favorite": True},
        NOT_CONNECTED,
    ),
    "target-before-connection": Case(
        "offline", {"instance": "offline", "favorite": True}, TARGET_REQUIRED
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES.values(), ids=ERROR_CASES.keys())
async def test_set_favorite_errors(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, case: Case
) -> None:
    token = token_for(tenants, case.token)
    body = await post(client, SET_FAVORITE, case.variables, token=token, headers=case.headers)
    assert error_of(body) == case.error
    if case.error == INVALID_TOKEN:  # refused before anything ran: no data, no path
        assert "data" not in body and "path" not in body["errors"][0]
    else:
        assert body["data"] is None  # setFavorite is non-null: the error nulls the whole data
        assert body["errors"][0]["path"] == ["setFavorite"]
    assert await current_favorites(storage) == {"main": 0, "offline": 0, "rival": 0}


@pytest.mark.parametrize("token", ["globex", "rival", "offline"])
async def test_unreachable_instance_answers_like_a_nonexistent_one(
    client: httpx.AsyncClient, tenants: Tenants, token: str
) -> None:
    caller = token_for(tenants, token)
    for query, variables in [
        (SET_FAVORITE, {"number": CHAT_JID, "favorite": True}),
        (FAVORITE, {"number": CHAT_JID}),
        (FAVORITES, {}),
    ]:
        hidden = await post(client, query, {"instance": "main", **variables}, token=caller)
        missing = await post(client, query, {"instance": "ghost", **variables}, token=caller)
        assert hidden == missing
        assert error_of(hidden) == INSTANCE_NOT_FOUND


async def test_type_error_is_a_validation_error_and_changes_nothing(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    literal = f'mutation {{ setFavorite(instance: "main", number: "{CHAT_JID}", favorite: "yes") '
    literal += "{ success } }"
    body = await post(client, literal, token=tenants.main_token)
    assert "data" not in body  # it never ran
    [error] = body["errors"]
    assert error["message"] == 'Boolean cannot represent a non boolean value: "yes"'
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}

    variables = {"instance": "main", "number": CHAT_JID, "favorite": "yes"}
    body = await post(client, SET_FAVORITE, variables, token=tenants.main_token)
    assert "data" not in body
    [error] = body["errors"]
    assert error["message"] == (
        "Variable '$favorite' has invalid value: "
        "Boolean cannot represent a non boolean value: 'yes'"
    )
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}

    missing = f'mutation {{ setFavorite(instance: "main", number: "{CHAT_JID}") {{ success }} }}'
    body = await post(client, missing, token=tenants.main_token)
    assert "data" not in body
    assert body["errors"][0]["message"] == (
        "Argument 'Mutation.setFavorite(favorite:)' of type 'Boolean!' is required, "
        "but it was not provided."
    )

    assert await current_favorites(storage) == {"main": 0, "offline": 0, "rival": 0}
    assert data_of(await favorite_record(client, tenants.main_token, number=CHAT_JID)) == {
        "favorite": None
    }


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        (
            SET_FAVORITE,
            {"instance": "main", "number": CHAT_JID, "favorite": None},
            "Variable '$favorite' has invalid value: "
            "Expected value of non-null type 'Boolean!' not to be None.",
        ),
        (
            FAVORITES,
            {"instance": "main", "first": 2**40},
            "Variable '$first' has invalid value: "
            "Int cannot represent non 32-bit signed integer value: 1099511627776",
        ),
        (
            FAVORITES,
            {"instance": "main", "type": "chat"},
            "Variable '$type' has invalid value: Value 'chat' does not exist in 'FavoriteType' "
            "enum. Did you mean the enum value 'CHAT'?",
        ),
        (
            FAVORITE,
            {"instance": ["main"]},
            "Variable '$instance' has invalid value: "
            "String cannot represent a non string value: ['main']",
        ),
    ],
    ids=["null-boolean", "int-overflow", "unknown-enum-value", "list-for-string"],
)
async def test_bad_variables_are_the_clients_errors(
    client: httpx.AsyncClient,
    tenants: Tenants,
    caplog: pytest.LogCaptureFixture,
    query: str,
    variables: dict[str, Any],
    message: str,
) -> None:
    # graphql-core gives these an original error of its own: they are still not favgate's.
    with caplog.at_level(logging.WARNING, logger="favgate"):
        body = await post(client, query, variables, token=tenants.main_token)
    assert "data" not in body  # nothing ran
    [error] = body["errors"]
    assert error["message"] == message
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert [r for r in caplog.records if r.name.startswith("favgate")] == []


async def test_unexpected_errors_are_masked(
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A message the upstream engine wrote without its chat: reading it is a bug in favgate's
    # eyes (a KeyError), which clients must not see.
    await storage.messages.upsert_many("main", [{"id": "BROKEN1", "text": "no chat"}])
    with caplog.at_level(logging.ERROR, logger="favgate"):
        body = await set_favorite(client, tenants.main_token, messageId="BROKEN1")
    assert body["data"] is None
    assert body["errors"] == [
        {
            "message": "Unexpected error.",
            "locations": [{"line": 3, "column": 3}],
            "path": ["setFavorite"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    [record] = [r for r in caplog.records if r.name.startswith("favgate")]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)


# --- the favorite query ---------------------------------------------------------------


async def test_favorite_is_null_when_never_favorited(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    for target in ({"number": CHAT_JID}, {"messageId": MESSAGE_ID}, {"messageId": "NOPE"}):
        body = await favorite_record(client, tenants.acme_token, **target)
        assert data_of(body) == {"favorite": None}


async def test_favorite_chat_record(client: httpx.AsyncClient, tenants: Tenants) -> None:
    start = now_ms()
    await set_favorite(client, tenants.main_token, number=CHAT_JID)
    end = now_ms()
    record = data_of(await favorite_record(client, tenants.acme_token, number="+5511999999999"))
    favorite = record["favorite"]
    # A node id (Query.node), naming the record's ObjectId.
    key = favorite_key(favorite["id"])
    assert key is not None and ObjectId.is_valid(key)
    favorited_at = datetime.fromisoformat(favorite["favoritedAt"])
    assert start <= favorited_at <= end
    assert favorite == {
        "id": favorite["id"],
        "type": "CHAT",
        "chatJid": CHAT_JID,
        "messageId": None,
        "favorite": True,
        "favoritedAt": favorite["favoritedAt"],
        "updatedAt": favorite["favoritedAt"],
        "message": None,
    }


async def test_favorite_message_record(client: httpx.AsyncClient, tenants: Tenants) -> None:
    await set_favorite(client, tenants.main_token, messageId="GROUPMSG1")
    favorite = data_of(await favorite_record(client, tenants.main_token, messageId="GROUPMSG1"))[
        "favorite"
    ]
    assert favorite == {
        "id": favorite["id"],
        "type": "MESSAGE",
        "chatJid": GROUP_JID,
        "messageId": "GROUPMSG1",
        "favorite": True,
        "favoritedAt": favorite["favoritedAt"],
        "updatedAt": favorite["favoritedAt"],
        "message": {
            "id": "GROUPMSG1",
            "chatJid": GROUP_JID,
            "fromMe": True,
            "timestamp": None,
            "text": "hi all",
        },
    }
    # messageId wins over number here too; the chat itself was never favorited.
    both = await favorite_record(
        client, tenants.main_token, number=GROUP_JID, messageId="GROUPMSG1"
    )
    assert data_of(both)["favorite"] == favorite
    chat = await favorite_record(client, tenants.main_token, number=GROUP_JID)
    assert data_of(chat) == {"favorite": None}


async def test_favorite_after_unfavorite(client: httpx.AsyncClient, tenants: Tenants) -> None:
    token = tenants.main_token
    await set_favorite(client, token, messageId=MESSAGE_ID)
    before = data_of(await favorite_record(client, token, messageId=MESSAGE_ID))["favorite"]
    await set_favorite(client, token, messageId=MESSAGE_ID, favorite=False)
    after = data_of(await favorite_record(client, token, messageId=MESSAGE_ID))["favorite"]
    assert after["favorite"] is False
    assert after["id"] == before["id"]
    assert after["favoritedAt"] == before["favoritedAt"]
    assert datetime.fromisoformat(after["updatedAt"]) >= datetime.fromisoformat(before["updatedAt"])
    assert {k: v for k, v in after.items() if k not in ("favorite", "updatedAt")} == {
        k: v for k, v in before.items() if k not in ("favorite", "updatedAt")
    }


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ({}, TARGET_REQUIRED),
        ({"number": "abc"}, BAD_NUMBER),
        ({"number": " ", "messageId": " "}, TARGET_REQUIRED),
    ],
)
async def test_favorite_errors(
    client: httpx.AsyncClient, tenants: Tenants, target: dict[str, str], error: tuple[str, str]
) -> None:
    body = await favorite_record(client, tenants.main_token, **target)
    assert error_of(body) == error
    # favorite is nullable: the error leaves the field null, not the whole data.
    assert body["data"] == {"favorite": None}
    assert error_of(await favorite_record(client, None, **target)) == INVALID_TOKEN


async def test_reads_do_not_need_a_connected_instance(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    chat = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=CHAT_JID)
    await storage.favorites.set("offline", chat, True, now_ms())
    record = data_of(
        await favorite_record(client, tenants.offline_token, "offline", number=CHAT_JID)
    )
    assert record["favorite"]["chatJid"] == CHAT_JID
    connection = await page_of(client, tenants.acme_token, "offline")
    assert keys_of(connection) == [("CHAT", CHAT_JID, None)]


# --- the favorites listing ------------------------------------------------------------

PAGE_MESSAGES = [
    {
        "id": f"PAGEMSG{i}",
        "chat_jid": CHAT_JID if i < 6 else GROUP_JID,
        "from_me": i % 2 == 0,
        "text": f"page message {i}",
    }
    for i in range(10)
]
OTHER_CHATS = [f"55119{i:08d}@s.whatsapp.net" for i in range(14)]


async def seed_favorites(client: httpx.AsyncClient, storage: Storage, token: str) -> list[Key]:
    """25 favorites on main: 15 chats (CHAT_JID among them), 10 messages (6 in CHAT_JID,
    4 in GROUP_JID), interleaved; returns their keys newest first."""
    await storage.messages.upsert_many("main", PAGE_MESSAGES)
    chats = [{"number": jid.split("@")[0]} for jid in OTHER_CHATS] + [{"number": CHAT_JID}]
    messages = [{"messageId": m["id"]} for m in PAGE_MESSAGES]
    targets: list[dict[str, str]] = []
    while chats or messages:
        targets += chats[:3] + messages[:2]
        chats, messages = chats[3:], messages[2:]
    created: list[Key] = []
    for target in targets:
        result = data_of(await set_favorite(client, token, **target))["setFavorite"]
        created.append((result["type"], result["chatJid"], result["messageId"]))
    assert len(set(created)) == 25
    return created[::-1]


@pytest.mark.slow
async def test_favorites_walk_newest_first(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.main_token
    newest_first = await seed_favorites(client, storage, token)

    pages = await walk(client, token, first=10)
    assert [len(page["edges"]) for page in pages] == [10, 10, 5]
    assert [page["totalCount"] for page in pages] == [25, 25, 25]
    assert [page["pageInfo"]["hasNextPage"] for page in pages] == [True, True, False]
    for page in pages:
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    walked = [key for page in pages for key in keys_of(page)]
    assert walked == newest_first  # newest first, no duplicates, no gaps
    ids = [edge["node"]["id"] for page in pages for edge in page["edges"]]
    cursors = [edge["cursor"] for page in pages for edge in page["edges"]]
    assert len(set(ids)) == len(set(cursors)) == 25
    assert all(edge["node"]["favorite"] for page in pages for edge in page["edges"])

    # A cursor is stable: asking again gives the same cursors.
    assert await page_of(client, token, first=10) == pages[0]
    # After the last favorite there is nothing.
    last = pages[-1]["pageInfo"]["endCursor"]
    assert await page_of(client, token, first=10, after=last) == {
        "totalCount": 25,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }
    # Page sizes that land on the end exactly.
    whole = await page_of(client, token, first=25)
    assert keys_of(whole) == newest_first
    assert whole["pageInfo"]["hasNextPage"] is False
    assert (await page_of(client, token, first=24))["pageInfo"]["hasNextPage"] is True
    # The default page size is 20, whether first is omitted or null.
    assert keys_of(await page_of(client, token)) == newest_first[:20]
    assert keys_of(await page_of(client, token, first=None)) == newest_first[:20]


@pytest.mark.slow
async def test_favorites_filters(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.acme_token
    newest_first = await seed_favorites(client, storage, tenants.main_token)

    def only(kind: str | None = None, chat: str | None = None) -> list[Key]:
        return [k for k in newest_first if kind in (None, k[0]) and chat in (None, k[1])]

    for arguments, expected in [
        ({"type": "CHAT"}, only("CHAT")),
        ({"type": "MESSAGE"}, only("MESSAGE")),
        ({"chatJid": CHAT_JID}, only(chat=CHAT_JID)),
        ({"chatJid": "+55 (11) 99999-9999"}, only(chat=CHAT_JID)),
        ({"chatJid": "5511999999999@c.us", "type": "MESSAGE"}, only("MESSAGE", CHAT_JID)),
        ({"chatJid": "5511999999999", "type": "CHAT"}, [("CHAT", CHAT_JID, None)]),
        ({"chatJid": GROUP_JID}, only(chat=GROUP_JID)),
        ({"chatJid": GROUP_JID, "type": "CHAT"}, []),
        ({"chatJid": "5500000000000"}, []),
    ]:
        pages = await walk(client, token, first=4, **arguments)
        assert [key for page in pages for key in keys_of(page)] == expected, arguments
        assert {page["totalCount"] for page in pages} == {len(expected)}, arguments
    assert len(only("CHAT")) == 15
    assert len(only("MESSAGE")) == 10
    assert len(only(chat=CHAT_JID)) == 7
    assert len(only(chat=GROUP_JID)) == 4

    body = await favorites_page(client, token, chatJid="not-a-chat")
    message, code = error_of(body)
    assert code == "BAD_USER_INPUT"
    # The reason is the number's; which argument the message names is left open.
    assert message.endswith(": expected a phone number of 7 to 15 digits or a WhatsApp JID")
    body = await favorites_page(client, token, type="PIN")
    assert "data" not in body
    assert "Value 'PIN' does not exist in 'FavoriteType' enum" in body["errors"][0]["message"]


@pytest.mark.slow
async def test_unfavorited_ones_disappear(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.main_token
    newest_first = await seed_favorites(client, storage, token)
    gone = [newest_first[0], newest_first[9], newest_first[10], newest_first[24]]
    for type_, chat_jid, message_id in gone:
        target = {"messageId": message_id} if type_ == "MESSAGE" else {"number": chat_jid}
        await set_favorite(client, token, favorite=False, **target)

    remaining = [key for key in newest_first if key not in gone]
    pages = await walk(client, token, first=10)
    assert [key for page in pages for key in keys_of(page)] == remaining
    assert {page["totalCount"] for page in pages} == {21}

    # Favorited again, it comes back on top: its favoritedAt is the new one.
    type_, chat_jid, message_id = gone[-1]
    target = {"messageId": message_id} if type_ == "MESSAGE" else {"number": chat_jid}
    await set_favorite(client, token, **target)
    assert keys_of(await page_of(client, token, first=25)) == [gone[-1], *remaining]


@pytest.mark.slow
async def test_cursor_stays_valid_when_favorites_come_and_go(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.main_token
    newest_first = await seed_favorites(client, storage, token)
    first_page = await page_of(client, token, first=10)
    cursor = first_page["pageInfo"]["endCursor"]
    second_page = await page_of(client, token, first=10, after=cursor)
    assert keys_of(second_page) == newest_first[10:20]

    # New favorites on top do not shift what follows the cursor.
    for number in ("5521000000001", "5521000000002", "5521000000003"):
        await set_favorite(client, token, number=number)
    again = await page_of(client, token, first=10, after=cursor)
    assert again["edges"] == second_page["edges"]
    assert again["totalCount"] == 28

    # Neither does removing the favorite the cursor points at, nor one just after it.
    for type_, chat_jid, message_id in (newest_first[9], newest_first[10]):
        target = {"messageId": message_id} if type_ == "MESSAGE" else {"number": chat_jid}
        await set_favorite(client, token, favorite=False, **target)
    after_removal = await page_of(client, token, first=10, after=cursor)
    assert keys_of(after_removal) == newest_first[11:21]


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "", "W10", "WzEsMl0", "eyJhIjoxfQ", "WzE3MDAwMDAwMDAwMDAsIm5vcGUiXQ"],
)
async def test_invalid_cursor(client: httpx.AsyncClient, tenants: Tenants, cursor: str) -> None:
    body = await favorites_page(client, tenants.main_token, after=cursor)
    assert error_of(body) == INVALID_CURSOR
    assert body["data"] is None  # favorites is non-null


@pytest.mark.slow
async def test_page_size_is_capped(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    # All share one favoritedAt, and one that float seconds * 1000 would turn into a
    # millisecond less (1086276587.011 * 1000 = 1086276587010.9999): the cursor must hold
    # it exactly for the id to break the tie.
    favorited_at = datetime(2004, 6, 3, 15, 29, 47, 11000, tzinfo=UTC)
    for i in range(105):
        chat = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=f"55210{i:08d}@s.whatsapp.net")
        await storage.favorites.set("main", chat, True, favorited_at)
    token = tenants.main_token
    for first in (100, 101, 500, 2**31 - 1):
        connection = await page_of(client, token, first=first)
        assert len(connection["edges"]) == 100
        assert connection["pageInfo"]["hasNextPage"] is True
        assert connection["totalCount"] == 105
    # The walk loses nothing across the tie.
    pages = await walk(client, token, first=100)
    assert [len(page["edges"]) for page in pages] == [100, 5]
    assert len({edge["node"]["chatJid"] for page in pages for edge in page["edges"]}) == 105


@pytest.mark.slow
async def test_zero_and_negative_page_sizes(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    await seed_favorites(client, storage, tenants.main_token)
    empty = await page_of(client, tenants.main_token, first=0)
    assert empty["edges"] == []
    assert empty["totalCount"] == 25
    assert empty["pageInfo"] == {"hasNextPage": True, "endCursor": None}

    body = await favorites_page(client, tenants.main_token, first=-1)
    assert error_of(body) == ("first must not be negative", "BAD_USER_INPUT")
    assert body["data"] is None


# --- tenant isolation -----------------------------------------------------------------

OPERATIONS = ["setFavorite", "favorite", "favorites"]
CALLERS = {"acme": True, "main": True, "globex": False, "offline": False}


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("caller", CALLERS.keys())
async def test_tenant_isolation(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, caller: str, operation: str
) -> None:
    """Who reaches instance main: its account's token and its own token, nobody else."""
    chat = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=CHAT_JID)
    await storage.favorites.set("main", chat, True, now_ms())
    await storage.favorites.set("rival", chat, True, now_ms())
    token = token_for(tenants, caller)
    if operation == "setFavorite":
        body = await set_favorite(client, token, messageId=MESSAGE_ID)
        expected: dict[str, Any] = {"setFavorite": message_result(CHAT_JID, MESSAGE_ID)}
    elif operation == "favorite":
        body = await post(
            client,
            'query { favorite(instance: "main", number: "5511999999999") { chatJid favorite } }',
            token=token,
        )
        expected = {"favorite": {"chatJid": CHAT_JID, "favorite": True}}
    else:
        body = await post(
            client,
            'query { favorites(instance: "main") { totalCount edges { node { chatJid } } } }',
            token=token,
        )
        expected = {"favorites": {"totalCount": 1, "edges": [{"node": {"chatJid": CHAT_JID}}]}}

    if CALLERS[caller]:
        assert data_of(body) == expected
    else:
        assert error_of(body) == INSTANCE_NOT_FOUND
    # Nothing of main leaked to or changed for the others.
    assert await current_favorites(storage) == {
        "main": 2 if CALLERS[caller] and operation == "setFavorite" else 1,
        "offline": 0,
        "rival": 1,
    }


# --- without HTTP ---------------------------------------------------------------------


async def test_schema_without_http(storage: Storage, tenants: Tenants) -> None:
    variables = {"instance": "main", "messageId": MESSAGE_ID, "favorite": True}
    result = await schema.execute(
        SET_FAVORITE,
        variable_values=variables,
        context_value=build_context(storage, tenants.main_token),
    )
    assert result.errors is None
    assert result.data == {"setFavorite": message_result(CHAT_JID, MESSAGE_ID)}

    query = """
      query { favorites(instance: "main") { totalCount edges { node { type message { text } } } } }
    """
    result = await schema.execute(query, context_value=build_context(storage, tenants.acme_token))
    assert result.errors is None
    assert result.data == {
        "favorites": {
            "totalCount": 1,
            "edges": [{"node": {"type": "MESSAGE", "message": {"text": "hello"}}}],
        }
    }

    result = await schema.execute(query, context_value=build_context(storage, None))
    assert result.data is None
    assert result.errors is not None
    [error] = result.errors
    assert (error.message, error.extensions) == ("Invalid token", {"code": "UNAUTHENTICATED"})


# --- DataLoader: round trips to the database -----------------------------------------


async def count_commands(
    commands: CommandLog, client: httpx.AsyncClient, query: str, token: str
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    commands.clear()
    commands.active = True
    try:
        body = await post(client, query, token=token)
    finally:
        commands.active = False
    return body, commands.commands


MESSAGE_PAGE = (
    'query { favorites(instance: "main", first: 20) { edges { node { message { text } } } } }'
)
MESSAGE_PAGE_COUNTED = (
    'query { favorites(instance: "main", first: 20) '
    "{ totalCount edges { node { message { text } } } } }"
)
ACCOUNT_TOKEN_LOOKUP = [("find", "accounts")]
INSTANCE_TOKEN_LOOKUP = [("find", "accounts"), ("find", "instances")]
# The rate limiter's one check, right after the token lookup (favgate.ratelimit).
RATE_LIMIT_CHECK = [("findAndModify", "rate_limits")]
LISTING = [("find", "instances"), ("find", "favorites"), ("find", "messages")]
COUNT = [("aggregate", "favorites")]


@pytest.mark.parametrize(
    ("caller", "query", "expected"),
    [
        ("acme", MESSAGE_PAGE, ACCOUNT_TOKEN_LOOKUP + RATE_LIMIT_CHECK + LISTING),
        ("main", MESSAGE_PAGE, INSTANCE_TOKEN_LOOKUP + RATE_LIMIT_CHECK + LISTING),
        ("acme", MESSAGE_PAGE_COUNTED, ACCOUNT_TOKEN_LOOKUP + RATE_LIMIT_CHECK + LISTING + COUNT),
        ("main", MESSAGE_PAGE_COUNTED, INSTANCE_TOKEN_LOOKUP + RATE_LIMIT_CHECK + LISTING + COUNT),
    ],
    ids=["account-token", "instance-token", "account-token-count", "instance-token-count"],
)
@pytest.mark.both_drivers
async def test_messages_are_loaded_in_one_round_trip(
    commands: CommandLog,
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    caller: str,
    query: str,
    expected: list[tuple[str, str]],
) -> None:
    messages = [
        {"id": f"LOADMSG{i:02d}", "chat_jid": CHAT_JID, "from_me": False, "text": f"text {i}"}
        for i in range(20)
    ]
    await storage.messages.upsert_many("main", messages)
    chat = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=CHAT_JID)
    for message in messages:
        target = FavoriteTarget(
            type=FavoriteType.MESSAGE, chat_jid=CHAT_JID, message_id=message["id"]
        )
        await storage.favorites.set("main", target, True, now_ms())
    # A 21st, older favorite, so that the page of 20 has a next page.
    await storage.favorites.set("main", chat, True, datetime(2020, 1, 1, tzinfo=UTC))

    body, seen = await count_commands(commands, client, query, token_for(tenants, caller))
    edges = data_of(body)["favorites"]["edges"]
    assert sorted(edge["node"]["message"]["text"] for edge in edges) == sorted(
        m["text"] for m in messages
    )
    # The token and instance lookups come first, in this order; the rest may interleave.
    assert seen[: len(expected) - 2] == expected[: len(expected) - 2]
    assert sorted(seen) == sorted(expected)


@pytest.mark.parametrize("target", [{"messageId": "\ud800"}, {"number": "x@\ud800"}])
async def test_lone_surrogates_are_refused(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, target: dict[str, str]
) -> None:
    # Encoded by hand: json.dumps escapes the lone surrogate, which httpx's encoder refuses.
    variables = {"instance": "main", "favorite": True, **target}
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": SET_FAVORITE, "variables": variables}),
        headers={"token": tenants.main_token, "Content-Type": "application/json"},
    )
    # No JSON text with a lone surrogate is read: a bad request, before anything runs.
    assert response.status_code == 400
    assert error_of(response.json()) == (
        "Invalid GraphQL request: the body is not valid JSON",
        "BAD_REQUEST",
    )
    assert await current_favorites(storage) == {"main": 0, "offline": 0, "rival": 0}


async def test_a_bad_chat_jid_filter_names_its_argument(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    body = await favorites_page(client, tenants.main_token, chatJid="not-a-chat")
    message = "Invalid chatJid: expected a phone number of 7 to 15 digits or a WhatsApp JID"
    assert error_of(body) == (message, "BAD_USER_INPUT")
