"""The GraphQL hot path's shortcuts: a listing loads its page's messages with the page when
``message`` is selected (however it is selected)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import strawberry
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, CommandLog, Tenants

from favgate.schema.selection import selects
from favgate.storage import FavoriteTarget, FavoriteType, Storage

# --- selects, on a schema of its own ------------------------------------------------------

seen: list[bool] = []


@strawberry.type
class Leaf:
    name: str = "leaf"


@strawberry.type
class Branch:
    leaf: Leaf = strawberry.field(default_factory=Leaf)
    other: str = "other"


@strawberry.type
class Root:
    @strawberry.field
    def branch(self, info: strawberry.Info) -> Branch:
        seen.append(selects(info, "leaf", "name"))
        return Branch()


small = strawberry.Schema(query=Root)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("{ branch { leaf { name } } }", True),
        ("{ branch { other leaf { __typename } } }", False),
        ("{ branch { other } }", False),
        ("{ branch { aliased: leaf { renamed: name } } }", True),  # names, not aliases
        ("{ branch { ...B } } fragment B on Branch { leaf { name } }", True),
        ("{ branch { leaf { ...L } } } fragment L on Leaf { name }", True),
        ("{ branch { ... on Branch { leaf { ... { name } } } } }", True),
        ("{ branch { ... @include(if: false) { leaf { name } } } }", True),  # conservative
    ],
)
async def test_selects_sees_through_fragments(query: str, expected: bool) -> None:
    seen.clear()
    result = await small.execute(query)
    assert result.errors is None
    assert seen == [expected]


# --- A page's messages --------------------------------------------------------------------

PAGE = """
query Page($instance: String!) {
  favorites(instance: $instance, first: 10) { edges { node { ...Node } } }
}
fragment Node on Favorite { messageId chatJid message { id chatJid text fromMe } }
"""
PAGE_WITHOUT_MESSAGE = PAGE.replace("message { id chatJid text fromMe }", "")
ONE = """
query One($instance: String!, $messageId: String) {
  favorite(instance: $instance, messageId: $messageId) { message { id text } }
}
"""


async def post(client: httpx.AsyncClient, token: str, query: str, **variables: Any) -> Any:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": {"instance": "main", **variables}},
        headers={"token": token},
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
async def favorites(storage: Storage, tenants: Tenants) -> None:
    """A message favorite, a group message favorite, a chat favorite, and a favorite of a
    message the upstream engine has since lost."""
    for minute, target in enumerate(
        [
            FavoriteTarget(FavoriteType.MESSAGE, CHAT_JID, MESSAGE_ID),
            FavoriteTarget(FavoriteType.MESSAGE, GROUP_JID, "GROUPMSG1"),
            FavoriteTarget(FavoriteType.CHAT, CHAT_JID),
            FavoriteTarget(FavoriteType.MESSAGE, CHAT_JID, "LOSTMSG1"),
        ]
    ):
        await storage.favorites.set(
            "main", target, True, datetime(2026, 1, 1, 0, minute, tzinfo=UTC)
        )


async def test_a_page_resolves_its_messages(
    client: httpx.AsyncClient, tenants: Tenants, favorites: None
) -> None:
    data = await post(client, tenants.main_token, PAGE)
    nodes = [edge["node"] for edge in data["favorites"]["edges"]]
    assert nodes == [
        {"messageId": "LOSTMSG1", "chatJid": CHAT_JID, "message": None},
        {"messageId": None, "chatJid": CHAT_JID, "message": None},
        {
            "messageId": "GROUPMSG1",
            "chatJid": GROUP_JID,
            "message": {"id": "GROUPMSG1", "chatJid": GROUP_JID, "text": "hi all", "fromMe": True},
        },
        {
            "messageId": MESSAGE_ID,
            "chatJid": CHAT_JID,
            "message": {"id": MESSAGE_ID, "chatJid": CHAT_JID, "text": "hello", "fromMe": False},
        },
    ]
    without = await post(client, tenants.main_token, PAGE_WITHOUT_MESSAGE)
    assert [edge["node"] for edge in without["favorites"]["edges"]] == [
        {key: value for key, value in node.items() if key != "message"} for node in nodes
    ]


async def test_one_favorite_still_loads_its_message(
    client: httpx.AsyncClient, tenants: Tenants, favorites: None
) -> None:
    data = await post(client, tenants.main_token, ONE, messageId=MESSAGE_ID)
    assert data == {"favorite": {"message": {"id": MESSAGE_ID, "text": "hello"}}}
    data = await post(client, tenants.main_token, ONE, messageId="LOSTMSG1")
    assert data == {"favorite": {"message": None}}


TWO_FAVORITES = """
query Two($instance: String!) {
  a: favorite(instance: $instance, messageId: "3EB08FCF27E532F1B0F5") { message { text } }
  b: favorite(instance: $instance, messageId: "GROUPMSG1") { message { text } }
  c: favorite(instance: $instance, number: "5511999999999") { message { text } }
  d: favorite(instance: $instance, messageId: "LOSTMSG1") { messageId }
}
"""


@pytest.mark.both_drivers
async def test_favorites_of_one_request_load_their_messages_together(
    client: httpx.AsyncClient, tenants: Tenants, favorites: None, commands: CommandLog
) -> None:
    """Messages not loaded with their favorite go through the request's DataLoader, only
    when asked for, each once (in one query when the fields get there together)."""
    data = await post(client, tenants.main_token, TWO_FAVORITES)
    assert data == {
        "a": {"message": {"text": "hello"}},
        "b": {"message": {"text": "hi all"}},
        "c": {"message": None},  # a chat favorite has no message
        "d": {"messageId": "LOSTMSG1"},  # not asked for: never loaded
    }
    finds = [doc for doc in commands.documents if doc.get("find") == "messages"]
    loaded = [message_id for doc in finds for message_id in doc["filter"]["id"]["$in"]]
    assert sorted(loaded) == ["3EB08FCF27E532F1B0F5", "GROUPMSG1"]
