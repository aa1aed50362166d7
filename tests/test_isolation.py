"""Tenant isolation: who reaches instance ``main`` (account acme), through every entry point.

acme's account token and main's own token reach it. Every other token, another account's,
that account's instance's, or main's sibling instance's, is refused with exactly the
response that instance ``ghost``, which does not exist, gets: nothing tells them main
exists, and nothing of main is read or changed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, Tenants

from favgate.storage import FavoriteTarget, FavoriteType, Storage

CALLERS = {
    # caller: (token, reaches main)
    "account": ("acme_token", True),
    "instance": ("main_token", True),
    "other account": ("globex_token", False),
    "other account's instance": ("rival_token", False),
    "sibling instance": ("offline_token", False),
}
CHAT = {"number": "5511999999999", "favorite": True}
QUERIES = {
    "setFavorite": "mutation ($instance: String!) { setFavorite(instance: $instance, "
    'number: "5511999999999", favorite: true) { success chatJid } }',
    "favorite": "query ($instance: String!) { favorite(instance: $instance, "
    'number: "5511999999999") { chatJid favorite } }',
    "favorites": "query ($instance: String!) { favorites(instance: $instance) "
    "{ totalCount edges { node { chatJid } } } }",
}
REACHED = {
    "REST": {
        "success": True,
        "message": "Chat favorited successfully",
        "chat_jid": CHAT_JID,
        "message_id": None,
        "favorite": True,
        "type": "chat",
    },
    "setFavorite": {"data": {"setFavorite": {"success": True, "chatJid": CHAT_JID}}},
    "favorite": {"data": {"favorite": {"chatJid": CHAT_JID, "favorite": True}}},
    "favorites": {
        "data": {"favorites": {"totalCount": 1, "edges": [{"node": {"chatJid": CHAT_JID}}]}}
    },
}
NOT_FOUND = {
    "REST": {"success": False, "error": {"message": "Instance not found"}},
    "GraphQL": ("Instance not found", {"code": "NOT_FOUND"}),
}


async def call(client: httpx.AsyncClient, entry: str, instance: str, token: str) -> Any:
    headers = {"token": token}
    if entry == "REST":
        response = await client.post(f"/api/chat/favorite/{instance}", json=CHAT, headers=headers)
    else:
        body = {"query": QUERIES[entry], "variables": {"instance": instance}}
        response = await client.post("/graphql", json=body, headers=headers)
    return response.status_code, response.json()


async def favorites_by_instance(storage: Storage) -> dict[str, int]:
    found: dict[str, int] = {}
    async for doc in storage._database["favorites"].find({"favorite": True}):
        found[doc["instance"]] = found.get(doc["instance"], 0) + 1
    return found


@pytest.mark.parametrize("entry", ["REST", *QUERIES])
@pytest.mark.parametrize("caller", CALLERS)
async def test_who_reaches_main(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, caller: str, entry: str
) -> None:
    chat = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=CHAT_JID)
    for instance in ("main", "rival"):
        await storage.favorites.set(instance, chat, True, datetime.now(UTC))
    token_name, reaches = CALLERS[caller]
    token = getattr(tenants, token_name)

    status, body = await call(client, entry, "main", token)
    if reaches:
        assert (status, body) == (200, REACHED[entry])
    else:
        assert (status, body) == await call(client, entry, "ghost", token)
        if entry == "REST":
            assert (status, body) == (404, NOT_FOUND["REST"])
        else:
            [error] = body["errors"]
            assert (error["message"], error["extensions"]) == NOT_FOUND["GraphQL"]
            assert body["data"] in (None, {entry: None})  # favorite is nullable
    assert await favorites_by_instance(storage) == {"main": 1, "rival": 1}
