"""Favorites: one record per (instance, target), switched on and off.

A record is never deleted: ``favorite: false`` keeps it with its ``updated_at``, so a
client can tell "never favorited" (no record) from "unfavorited" (a record set to false).
Listings return current favorites only.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from favgate.storage.indexes import FAVORITES
from favgate.storage.records import (
    Favorite,
    FavoriteFilter,
    FavoriteTarget,
    FavoriteType,
    Position,
)

_NEWEST_FIRST = [("favorited_at", DESCENDING), ("_id", DESCENDING)]


class Favorites:
    def __init__(self, database: Any) -> None:
        self._favorites = database[FAVORITES]

    async def set(
        self, instance: str, target: FavoriteTarget, favorite: bool, now: datetime
    ) -> None:
        """Make the target's state ``favorite``, touching nothing when it already is.

        One round trip. Repeating a request changes nothing, and concurrent identical
        requests cannot create two records: the unique index on the target lets one
        insert win and the others fail with a duplicate key, which means "already set".
        """
        key = _key(instance, target)
        if not favorite:
            await self._favorites.update_one(
                {**key, "favorite": True}, {"$set": {"favorite": False, "updated_at": now}}
            )
            return
        # A duplicate key means the record exists and is already a favorite.
        with contextlib.suppress(DuplicateKeyError):
            await self._favorites.update_one(
                {**key, "favorite": {"$ne": True}},
                {"$set": {"favorite": True, "favorited_at": now, "updated_at": now}},
                upsert=True,
            )

    async def get(self, instance: str, target: FavoriteTarget) -> Favorite | None:
        doc = await self._favorites.find_one(_key(instance, target))
        return None if doc is None else Favorite.from_document(doc)

    async def get_message(self, instance: str, message_id: str) -> Favorite | None:
        """The record of a message favorite, found by the message id alone."""
        query = {"instance": instance, "type": FavoriteType.MESSAGE.value, "message_id": message_id}
        doc = await self._favorites.find_one(query)
        return None if doc is None else Favorite.from_document(doc)

    async def page(
        self, where: FavoriteFilter, after: Position | None, limit: int
    ) -> list[Favorite]:
        """Up to ``limit`` current favorites, newest first, strictly after ``after``."""
        if limit <= 0:  # to motor a limit of 0 means none; PyMongo's to_list refuses it
            return []
        query = _current(where)
        if after is not None:
            query["$or"] = [
                {"favorited_at": {"$lt": after.favorited_at}},
                {"favorited_at": after.favorited_at, "_id": {"$lt": ObjectId(after.id)}},
            ]
        cursor = self._favorites.find(query).sort(_NEWEST_FIRST).limit(limit)
        return [Favorite.from_document(doc) for doc in await cursor.to_list(limit)]

    async def count(self, where: FavoriteFilter) -> int:
        return int(await self._favorites.count_documents(_current(where)))


def _key(instance: str, target: FavoriteTarget) -> dict[str, Any]:
    return {
        "instance": instance,
        "type": target.type.value,
        "message_id": target.message_id,
        "chat_jid": target.chat_jid,
    }


def _current(where: FavoriteFilter) -> dict[str, Any]:
    query: dict[str, Any] = {"instance": where.instance, "favorite": True}
    if where.type is not None:
        query["type"] = where.type.value
    if where.chat_jid is not None:
        query["chat_jid"] = where.chat_jid
    return query
