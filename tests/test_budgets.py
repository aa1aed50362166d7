"""Database round trips per request at steady state, counted over the wire with PyMongo's
command monitoring, with both drivers; and the TTL that bounds how long the caches that
make them possible may keep a revoked token or an old instance status.

Steady state means the token and the instance were looked up by an earlier request less
than the cache TTL ago. The budgets (issue 4): a chat favorite costs the rate limit and
the upsert, plus one lookup of the chat's identities while its number is cold (issue 13);
a message favorite adds the message's chat until it is cached; a page of
favorites costs the rate limit, the page and one batched query for its messages, and one
more only when ``totalCount`` is selected.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, MESSAGE_ID, CommandLog, Tenants

from favgate.config import Settings
from favgate.storage import FavoriteTarget, FavoriteType, InstanceStatus, Storage

pytestmark = pytest.mark.both_drivers

Command = tuple[str, str]  # (command name, collection)

RATE_LIMIT: Command = ("findAndModify", "rate_limits")
UPSERT: Command = ("update", "favorites")
# The upsert that returns the record it leaves, for setFavorite's ``record``.
UPSERT_RETURNING: Command = ("findAndModify", "favorites")
MESSAGE_CHAT: Command = ("find", "messages")
CHAT_IDENTITIES: Command = ("aggregate", "instances")
PAGE: Command = ("find", "favorites")
PAGE_MESSAGES: Command = ("find", "messages")
COUNT: Command = ("aggregate", "favorites")


class Gateway:
    """The app over HTTP, each request's database commands recorded."""

    def __init__(self, client: httpx.AsyncClient, log: CommandLog, token: str) -> None:
        self.client = client
        self.log = log
        self.token = token

    async def rest(self, **body: Any) -> tuple[httpx.Response, list[Command]]:
        return await self._counted("/api/chat/favorite/main", body)

    async def graphql(self, query: str, **variables: Any) -> tuple[dict[str, Any], list[Command]]:
        payload = {"query": query, "variables": {"instance": "main", **variables}}
        response, seen = await self._counted("/graphql", payload)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"], seen

    async def _counted(
        self, path: str, payload: dict[str, Any]
    ) -> tuple[httpx.Response, list[Command]]:
        self.log.clear()
        self.log.active = True
        try:
            response = await self.client.post(path, json=payload, headers={"token": self.token})
        finally:
            self.log.active = False
        return response, self.log.commands


@pytest.fixture(params=["acme", "main"], ids=["account-token", "instance-token"])
async def gateway(
    request: pytest.FixtureRequest,
    commands: CommandLog,
    client: httpx.AsyncClient,
    tenants: Tenants,
) -> Gateway:
    """The gateway warmed up: one request has looked the token and instance up."""
    gateway = Gateway(client, commands, getattr(tenants, f"{request.param}_token"))
    response, seen = await gateway.rest(number="5511900000000", favorite=True)
    assert response.status_code == 200, response.text
    # Cold: the token's owner (an instance token is looked for among accounts first) and
    # the instance were looked up; nothing of that is left for the requests that follow.
    lookups = [("find", "accounts")] + [("find", "instances")] * (request.param == "main")
    assert seen == [*lookups, RATE_LIMIT, ("find", "instances"), CHAT_IDENTITIES, UPSERT]
    return gateway


def fresh_number() -> str:
    """A chat never favorited before, so that the upsert really writes."""
    return "55" + str(uuid.uuid4().int)[:11]


SET_FAVORITE = """
mutation Set($instance: String!, $number: String, $messageId: String, $favorite: Boolean!) {
  setFavorite(instance: $instance, number: $number, messageId: $messageId, favorite: $favorite) {
    success message chatJid messageId favorite type
  }
}
"""


async def test_rest_chat_favorite(gateway: Gateway) -> None:
    number = fresh_number()
    response, cold = await gateway.rest(number=number, favorite=True)
    assert response.status_code == 200, response.text
    assert cold == [RATE_LIMIT, CHAT_IDENTITIES, UPSERT]
    response, warm = await gateway.rest(number=number, favorite=False)
    assert response.status_code == 200, response.text
    assert warm == [RATE_LIMIT, UPSERT]


async def test_graphql_chat_favorite(gateway: Gateway) -> None:
    number = fresh_number()
    data, cold = await gateway.graphql(SET_FAVORITE, number=number, favorite=True)
    assert data["setFavorite"]["message"] == "Chat favorited successfully"
    assert cold == [RATE_LIMIT, CHAT_IDENTITIES, UPSERT]
    data, warm = await gateway.graphql(SET_FAVORITE, number=number, favorite=False)
    assert data["setFavorite"]["message"] == "Chat unfavorited successfully"
    assert warm == [RATE_LIMIT, UPSERT]


SET_FAVORITE_RECORD = SET_FAVORITE.replace("type\n", "type record { id favorite }\n", 1)


async def test_graphql_chat_favorite_with_its_record(gateway: Gateway) -> None:
    data, seen = await gateway.graphql(SET_FAVORITE_RECORD, number=fresh_number(), favorite=True)
    assert data["setFavorite"]["record"]["favorite"] is True
    # The record comes back from the write itself: no read after it (a fresh number is
    # looked up once, for its chat's identity).
    assert seen == [RATE_LIMIT, CHAT_IDENTITIES, UPSERT_RETURNING]


async def test_rest_message_favorite(gateway: Gateway) -> None:
    response, cold = await gateway.rest(messageId=MESSAGE_ID, favorite=True)
    assert (response.status_code, response.json()["chat_jid"]) == (200, CHAT_JID)
    assert cold == [RATE_LIMIT, MESSAGE_CHAT, UPSERT]
    # The message's chat is known from now on: only the limit and the write are left.
    response, warm = await gateway.rest(messageId=MESSAGE_ID, favorite=False)
    assert (response.status_code, response.json()["chat_jid"]) == (200, CHAT_JID)
    assert warm == [RATE_LIMIT, UPSERT]


async def test_graphql_message_favorite(gateway: Gateway) -> None:
    data, cold = await gateway.graphql(SET_FAVORITE, messageId=MESSAGE_ID, favorite=True)
    assert data["setFavorite"]["chatJid"] == CHAT_JID
    assert cold == [RATE_LIMIT, MESSAGE_CHAT, UPSERT]
    data, warm = await gateway.graphql(SET_FAVORITE, messageId=MESSAGE_ID, favorite=False)
    assert data["setFavorite"]["message"] == "Message unfavorited successfully"
    assert warm == [RATE_LIMIT, UPSERT]


async def test_an_unknown_message_is_looked_up_every_time(gateway: Gateway) -> None:
    for _ in range(2):
        response, seen = await gateway.rest(messageId="NOT-YET-WRITTEN", favorite=True)
        assert response.status_code == 404
        assert seen == [RATE_LIMIT, MESSAGE_CHAT]


PAGE_WITH_MESSAGES = """
query Page($instance: String!) {
  favorites(instance: $instance, first: 20) {
    edges { cursor node { id chatJid messageId message { id text fromMe } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
COUNTED_PAGE_WITH_MESSAGES = PAGE_WITH_MESSAGES.replace("edges {", "totalCount edges {", 1)


async def favorite_messages(storage: Storage, count: int) -> list[str]:
    """``count`` messages favorited, plus an older chat favorite so that a next page exists."""
    ids = [f"PAGEMSG{i:02d}" for i in range(count)]
    await storage.messages.upsert_many(
        "main", [{"id": id, "chat_jid": CHAT_JID, "text": id} for id in ids]
    )
    for i, id in enumerate(ids):
        target = FavoriteTarget(FavoriteType.MESSAGE, CHAT_JID, id)
        await storage.favorites.set("main", target, True, datetime(2030, 1, 1, 0, i, tzinfo=UTC))
    chat = FavoriteTarget(FavoriteType.CHAT, CHAT_JID)
    await storage.favorites.set("main", chat, True, datetime(2020, 1, 1, tzinfo=UTC))
    return ids


async def test_favorites_page_with_messages(gateway: Gateway, storage: Storage) -> None:
    ids = await favorite_messages(storage, 20)
    data, seen = await gateway.graphql(PAGE_WITH_MESSAGES)
    edges = data["favorites"]["edges"]
    assert [edge["node"]["message"]["text"] for edge in edges] == ids[::-1]
    assert data["favorites"]["pageInfo"]["hasNextPage"] is True
    assert seen == [RATE_LIMIT, PAGE, PAGE_MESSAGES]


async def test_favorites_page_counts_only_when_asked(gateway: Gateway, storage: Storage) -> None:
    await favorite_messages(storage, 20)
    data, seen = await gateway.graphql(COUNTED_PAGE_WITH_MESSAGES)
    # 20 message favorites, the older chat one and the warm-up's chat favorite.
    assert (len(data["favorites"]["edges"]), data["favorites"]["totalCount"]) == (20, 22)
    # The count may run before or after the messages: they are resolved concurrently.
    assert seen[:2] == [RATE_LIMIT, PAGE]
    assert sorted(seen[2:]) == sorted([PAGE_MESSAGES, COUNT])


@pytest.mark.slow
async def test_an_expired_token_is_looked_up_once_for_concurrent_requests(
    settings: Settings, gateway: Gateway, tenants: Tenants
) -> None:
    await asyncio.sleep(settings.cache_ttl_seconds + 0.05)  # the warm-up's lookups expired
    gateway.log.clear()
    gateway.log.active = True
    try:
        bodies = [{"number": fresh_number(), "favorite": True} for _ in range(8)]
        headers = {"token": gateway.token}
        responses = await asyncio.gather(
            *(
                gateway.client.post("/api/chat/favorite/main", json=body, headers=headers)
                for body in bodies
            )
        )
    finally:
        gateway.log.active = False
    assert [response.status_code for response in responses] == [200] * 8
    seen = gateway.log.commands
    # One lookup of the token and one of the instance, shared by the eight requests; and
    # one rate-limit check for all eight, which the lookup let go at once (the Limiter).
    # Each cold number is looked up once.
    lookups = 1 + (gateway.token == tenants.main_token)
    assert seen.count(("find", "accounts")) == 1
    assert seen.count(("find", "instances")) == lookups
    assert (seen.count(RATE_LIMIT), seen.count(UPSERT), seen.count(CHAT_IDENTITIES)) == (1, 8, 8)
    assert len(seen) == 9 + lookups + 1 + 8


# --- What the caches may keep, and for how long -------------------------------------------


async def sleep_past_ttl(settings: Settings, cached_at: float) -> None:
    """Sleep until ``cached_at`` plus the TTL (and a margin) has passed."""
    await asyncio.sleep(max(0.0, cached_at + settings.cache_ttl_seconds + 0.05 - time.monotonic()))


@pytest.mark.slow
async def test_a_revoked_token_is_refused_within_the_ttl(
    settings: Settings, client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    assert settings.cache_ttl_seconds == 1.0  # the default, as deployed
    headers = {"token": tenants.acme_token}
    body = {"number": CHAT_JID, "favorite": True}
    cached_at = time.monotonic()
    response = await client.post("/api/chat/favorite/main", json=body, headers=headers)
    assert response.status_code == 200
    # Rotated by another process (``storage`` is not the app's): the app's cache does not
    # know yet, and keeps admitting the old token at most until the TTL.
    await storage.directory.reset_account("acme", "0" * 64)
    await sleep_past_ttl(settings, cached_at)
    response = await client.post("/api/chat/favorite/main", json=body, headers=headers)
    assert (response.status_code, response.json()) == (
        401,
        {"success": False, "error": {"message": "Invalid token"}},
    )


@pytest.mark.slow
async def test_a_status_change_takes_effect_within_the_ttl(
    settings: Settings, client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    headers = {"token": tenants.main_token}
    body = {"number": CHAT_JID, "favorite": True}
    cached_at = time.monotonic()
    response = await client.post("/api/chat/favorite/main", json=body, headers=headers)
    assert response.status_code == 200
    await storage.directory.set_instance_status("main", InstanceStatus.DISCONNECTED)
    await sleep_past_ttl(settings, cached_at)
    response = await client.post("/api/chat/favorite/main", json=body, headers=headers)
    assert (response.status_code, response.json()) == (
        503,
        {"success": False, "error": {"message": "Instance is not connected to WhatsApp"}},
    )
    query = SET_FAVORITE
    variables = {"instance": "main", "number": CHAT_JID, "favorite": True}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INSTANCE_NOT_CONNECTED"
