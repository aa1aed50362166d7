"""Messages, as the upstream WhatsApp engine writes them.

favgate only reads this collection, except for ``favgate messages import``, which upserts
by ``(instance, id)`` and keeps any field it does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pymongo import UpdateOne

from favgate.storage.indexes import MESSAGES
from favgate.storage.records import Message

_FIELDS = {"instance": 1, "id": 1, "chat_jid": 1, "from_me": 1, "timestamp": 1, "text": 1}


class Messages:
    def __init__(self, database: Any) -> None:
        self._messages = database[MESSAGES]

    async def get(self, instance: str, message_id: str) -> Message | None:
        doc = await self._messages.find_one({"instance": instance, "id": message_id}, _FIELDS)
        return None if doc is None else Message.from_document(doc)

    async def chat_of(self, instance: str, message_id: str) -> str | None:
        """The chat JID of a message; None if there is no such message."""
        query = {"instance": instance, "id": message_id}
        doc = await self._messages.find_one(query, {"_id": 0, "chat_jid": 1})
        return None if doc is None else str(doc["chat_jid"])

    async def get_many(self, instance: str, message_ids: Iterable[str]) -> dict[str, Message]:
        """The messages found among ``message_ids``, by id, in one round trip."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:  # PyMongo's to_list refuses a length of 0
            return {}
        cursor = self._messages.find({"instance": instance, "id": {"$in": ids}}, _FIELDS)
        docs = await cursor.to_list(len(ids))
        return {doc["id"]: Message.from_document(doc) for doc in docs}

    async def upsert_many(self, instance: str, messages: Iterable[Mapping[str, Any]]) -> int:
        """Insert or update ``messages`` (each with an ``id``); returns how many were sent."""
        operations = [
            UpdateOne(
                {"instance": instance, "id": message["id"]},
                {"$set": {**message, "instance": instance}},
                upsert=True,
            )
            for message in messages
        ]
        if operations:
            await self._messages.bulk_write(operations, ordered=False)
        return len(operations)
