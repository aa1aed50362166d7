"""The raw baseline: the smallest Starlette app doing the database work of favgate's requests.

No auth, no rate limit, no GraphQL, no validation beyond what the operation needs, no cache:
parse the JSON body, run the same queries on the same collections with the same driver,
client options and write concern, answer JSON. What favgate costs above this is what the
gateway adds. The client is made as favgate makes its own (``favgate.storage.driver``),
with the deadline on every operation of favgate's default settings: a raw app that lets a
stalled database hold its requests for ever is not the one to compare with, and the
driver's deadline costs timers on every operation, the same in both.

- ``POST /chat/{instance}``: the chat's identity lookup (favgate.resolvers.identities: one
  ``aggregate``, through favgate's storage, so that it is the same command), then one
  upsert (favgate's REST chat favorite and ``setFavorite``);
- ``POST /message/{instance}``: one find (the message's chat), then one upsert;
- ``POST /page/{instance}``: one find (20 current favorites, newest first), then one find
  of their messages (``favorites(first: 20)`` with ``message``).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from pymongo import WriteConcern
from pymongo.errors import DuplicateKeyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from favgate.config import Settings
from favgate.storage.chats import Chats
from favgate.storage.driver import close, connect

NEWEST_FIRST = [("favorited_at", -1), ("_id", -1)]


async def chat(request: Request) -> Response:
    body = json.loads(await request.body())
    chat_jid = "".join(c for c in body["number"] if c.isdigit()) + "@s.whatsapp.net"
    # The bench's numbers have one spelling (no mobile rule matches): one JID to look up.
    await request.state.chats.sightings(request.path_params["instance"], [chat_jid])
    await upsert(request, request.path_params["instance"], chat_jid, None, body["favorite"])
    return JSONResponse(result("chat", chat_jid, None, body["favorite"]))


async def message(request: Request) -> Response:
    body = json.loads(await request.body())
    instance, message_id = request.path_params["instance"], body["messageId"]
    messages = request.state.database["messages"]
    found = await messages.find_one({"instance": instance, "id": message_id}, {"chat_jid": 1})
    if found is None:
        return JSONResponse({"success": False}, status_code=404)
    await upsert(request, instance, found["chat_jid"], message_id, body["favorite"])
    return JSONResponse(result("message", found["chat_jid"], message_id, body["favorite"]))


async def page(request: Request) -> Response:
    instance, database = request.path_params["instance"], request.state.database
    query = {"instance": instance, "favorite": True}
    cursor = database["favorites"].find(query).sort(NEWEST_FIRST).limit(21)
    favorites = (await cursor.to_list(21))[:20]
    ids = [favorite["message_id"] for favorite in favorites]
    cursor = database["messages"].find({"instance": instance, "id": {"$in": ids}})
    messages = {doc["id"]: doc for doc in await cursor.to_list(len(ids))}
    return JSONResponse([node(favorite, messages) for favorite in favorites])


async def upsert(
    request: Request, instance: str, chat_jid: str, message_id: str | None, favorite: bool
) -> None:
    """favgate's write, as favgate.storage.favorites makes it: the record's key, and a
    pipeline that keeps the dates when the state already holds."""
    key = {"instance": instance, "type": "message" if message_id else "chat"}
    key |= {"message_id": message_id, "chat_jid": chat_jid}
    now, already = datetime.now(UTC), {"$eq": ["$favorite", favorite]}
    state: dict[str, Any] = {
        "favorite": favorite,
        "updated_at": {"$cond": [already, "$updated_at", now]},
    }
    if favorite:
        state["favorited_at"] = {"$cond": [already, "$favorited_at", now]}
    with suppress(DuplicateKeyError):  # a concurrent insert of the same record won
        await request.state.database["favorites"].update_one(
            key, [{"$set": state}], upsert=favorite
        )


def result(type: str, chat_jid: str, message_id: str | None, favorite: bool) -> dict[str, Any]:
    verb = "favorited" if favorite else "unfavorited"
    return {
        "success": True,
        "message": f"{type.capitalize()} {verb} successfully",
        "chat_jid": chat_jid,
        "message_id": message_id,
        "favorite": favorite,
        "type": type,
    }


def node(favorite: dict[str, Any], messages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    found = messages.get(favorite["message_id"])
    return {
        "id": str(favorite["_id"]),
        "chatJid": favorite["chat_jid"],
        "messageId": favorite["message_id"],
        "favoritedAt": favorite["favorited_at"].isoformat(),
        "message": None
        if found is None
        else {"id": found["id"], "text": found.get("text"), "fromMe": found.get("from_me")},
    }


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    uri = os.environ["MONGODB_URI"]
    driver = "pymongo" if os.environ.get("FAVGATE_MONGO_DRIVER") == "pymongo" else "motor"
    database_name = os.environ.get("BENCH_DATABASE", "favgate")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        client = connect(uri, driver, Settings().database_timeout_ms)
        # The write concern favgate uses by default: journaled acknowledgements.
        concern = WriteConcern(w=1, j=True)
        database = client.get_database(database_name, write_concern=concern)
        yield {"database": database, "chats": Chats(database)}
        await close(client)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/chat/{instance}", chat, methods=["POST"]),
        Route("/message/{instance}", message, methods=["POST"]),
        Route("/page/{instance}", page, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
