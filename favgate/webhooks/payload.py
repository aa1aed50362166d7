"""What a delivery says: the event's id and its JSON body.

The body is ``{"type": "favorite.changed", "timestamp": ..., "data": {"instance": ...,
"favorite": ...}}`` (the envelope Standard Webhooks recommends), the favorite exactly as
the GraphQL ``Favorite`` type shows it, its message included (tests hold the two equal).
It is built once, when the change is enqueued, so that every retry sends the same bytes.

The event id is derived from the change's resume token, which names the change itself:
the same change read again (a relay resuming after a crash, another process taking
over) gets the same id, so it is enqueued once and receivers can deduplicate by it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import bson
import orjson

from favgate.schema.nodes import FAVORITE, global_id
from favgate.storage import Favorite, Message, ResumeToken

EVENT_TYPE = "favorite.changed"


def event_id(token: ResumeToken) -> str:
    return "evt_" + hashlib.sha256(bson.encode(dict(token))).hexdigest()[:32]


def body(favorite: Favorite, message: Message | None) -> bytes:
    return orjson.dumps(
        {
            "type": EVENT_TYPE,
            "timestamp": _iso(favorite.updated_at),
            "data": {"instance": favorite.instance, "favorite": _favorite(favorite, message)},
        }
    )


def _favorite(favorite: Favorite, message: Message | None) -> dict[str, Any]:
    return {
        "id": global_id(FAVORITE, favorite.id),  # the Relay id GraphQL shows
        "type": favorite.target.type.name,
        "chatJid": favorite.target.chat_jid,
        "messageId": favorite.target.message_id,
        "favorite": favorite.favorite,
        "favoritedAt": _iso(favorite.favorited_at),
        "updatedAt": _iso(favorite.updated_at),
        "message": None if message is None else _message(message),
    }


def _message(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "chatJid": message.chat_jid,
        "fromMe": message.from_me,
        "timestamp": None if message.timestamp is None else _iso(message.timestamp),
        "text": message.text,
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat()  # as GraphQL's DateTime scalar serializes it
