"""Favorites: one record per (instance, target), switched on and off.

A record is never deleted: ``favorite: false`` keeps it with its ``updated_at``, so a
client can tell "never favorited" (no record) from "unfavorited" (a record set to false).
Listings return current favorites only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from favgate.storage.indexes import FAVORITES
from favgate.storage.records import (
    Favorite,
    FavoriteFilter,
    FavoriteTarget,
    FavoriteType,
    Position,
)

_NEWEST_FIRST = [("favorited_at", DESCENDING), ("_id", DESCENDING)]
DUPLICATE_KEY = 11000


# Told (instance, chat JID) each time a chat favorite is switched on, so creating its
# record if there was none: what the identities' cache needs to know (storage.caching).
ChatFavorited = Callable[[str, str], None]


class Favorites:
    def __init__(self, database: Any, chat_favorited: ChatFavorited | None = None) -> None:
        self._favorites = database[FAVORITES]
        self._chat_favorited = chat_favorited

    async def set(
        self,
        instance: str,
        target: FavoriteTarget,
        favorite: bool,
        now: datetime,
        *,
        returning: bool = False,
    ) -> Favorite | None:
        """Make the target's state ``favorite``, touching nothing when it already is.

        One round trip. Repeating a request changes nothing, and concurrent identical
        requests cannot create two records: the unique index on the target lets one
        insert win and the others fail with a duplicate key, which means "already set".

        With ``returning``, the record as it stands after the write, from the write
        itself (a findAndModify), or None when switching off a target that has none (no
        record is made for it); else None. Only callers that need the record ask for it:
        SecantusDB runs a findAndModify as a scan of the collection (it re-asserts the
        query beside the ``_id`` it found, in an ``$and`` no index serves), where an
        update is an index lookup.
        """
        record = await self._set(instance, target, favorite, now, returning)
        self._switched(instance, [(target, favorite)])
        return record

    async def _set(
        self, instance: str, target: FavoriteTarget, favorite: bool, now: datetime, returning: bool
    ) -> Favorite | None:
        query, update, upsert = _switch(instance, target, favorite, now)
        if not returning:
            # A duplicate key means the record exists and is already a favorite.
            with contextlib.suppress(DuplicateKeyError):
                await self._favorites.update_one(query, update, upsert=upsert)
            return None
        try:
            doc = await self._favorites.find_one_and_update(
                query, update, upsert=upsert, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            doc = None
        if doc is None and upsert:
            # An upsert always leaves a record, but one that lost the insert race to a
            # concurrent request fails with a duplicate key (or, on SecantusDB, answers
            # no document): the record is then read, in that rare race only.
            return await self.get(instance, target)
        return None if doc is None else Favorite.from_document(doc)

    async def set_many(
        self, instance: str, states: Iterable[tuple[FavoriteTarget, bool]], now: datetime
    ) -> None:
        """``set`` for many targets in one round trip (one unordered bulk write).

        The server may apply the writes in any order: a target given twice ends in either
        state (the resolvers give each target once).
        """
        states = list(states)
        operations = [
            UpdateOne(*_switch(instance, target, favorite, now)) for target, favorite in states
        ]
        if not operations:
            return
        try:
            await self._favorites.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            # As in ``set``: a duplicate key means another writer won the insert.
            details = exc.details
            if details.get("writeConcernErrors") or any(
                error["code"] != DUPLICATE_KEY for error in details["writeErrors"]
            ):
                raise
        self._switched(instance, states)

    def _switched(self, instance: str, states: Iterable[tuple[FavoriteTarget, bool]]) -> None:
        """Tell ``chat_favorited`` of the chats switched on (switching off creates nothing)."""
        if self._chat_favorited is None:
            return
        for target, favorite in states:
            if favorite and target.type is FavoriteType.CHAT:
                self._chat_favorited(instance, target.chat_jid)

    async def get_many(
        self, instance: str, targets: Iterable[FavoriteTarget]
    ) -> dict[FavoriteTarget, Favorite]:
        """The records found among ``targets``, by target: one query for the chats and
        one for the messages, run together.

        Each is an ``$in`` under equalities on a prefix of the unique index, which
        SecantusDB serves from the index; one query for both (an ``$or``, or ``$in`` on
        every field) it would run as a scan of the collection.
        """
        wanted = set(targets)
        chats = [t.chat_jid for t in wanted if t.type is FavoriteType.CHAT]
        messages = [t.message_id for t in wanted if t.message_id is not None]
        queries = []
        if chats:
            queries.append(_chats_query(instance, chats))
        if messages:
            queries.append(_messages_query(instance, messages))
        found = await asyncio.gather(*(self._find(query) for query in queries))
        # A message id may have been recorded under another chat too: exact targets only.
        records = (favorite for batch in found for favorite in batch)
        return {favorite.target: favorite for favorite in records if favorite.target in wanted}

    async def get_by_id(self, favorite_id: str) -> Favorite | None:
        """The record with this id, whichever instance it is of; None if the id is not an
        ObjectId's 24 hex digits or no record has it. Callers check the tenant."""
        if len(favorite_id) != 24 or not ObjectId.is_valid(favorite_id):
            return None
        doc = await self._favorites.find_one({"_id": ObjectId(favorite_id)})
        return None if doc is None else Favorite.from_document(doc)

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

    async def chat_records(self, instance: str) -> list[Favorite]:
        """Every chat favorite record of ``instance``, current or switched off."""
        query = {"instance": instance, "type": FavoriteType.CHAT.value, "message_id": None}
        docs = await self._favorites.find(query).to_list(None)
        return [Favorite.from_document(doc) for doc in docs]

    async def merge(
        self, instance: str, into: FavoriteTarget, state: Favorite, aliases: Iterable[str]
    ) -> None:
        """Record ``state`` on ``into``, then delete the records ``aliases`` (their ids):
        the one place where records are deleted, as they name a chat ``into`` names too.
        Run again after a failure, it finishes the job."""
        dates = {"favorited_at": state.favorited_at, "updated_at": state.updated_at}
        update = {"$set": {"favorite": state.favorite, **dates}}
        await self._favorites.update_one(_key(instance, into), update, upsert=True)
        ids = [ObjectId(alias) for alias in aliases]
        if ids:
            await self._favorites.delete_many({"_id": {"$in": ids}, "instance": instance})

    async def count(self, where: FavoriteFilter) -> int:
        return int(await self._favorites.count_documents(_current(where)))

    async def _find(self, query: dict[str, Any]) -> list[Favorite]:
        docs = await self._favorites.find(query).to_list(None)
        return [Favorite.from_document(doc) for doc in docs]


def _switch(
    instance: str, target: FavoriteTarget, favorite: bool, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """(query, update, upsert) of the write that makes the target's state ``favorite``.

    The query is the target's key alone, equalities on its unique index: SecantusDB (the
    embedded database) plans a collection scan as soon as a predicate falls outside the
    index, which made every write cost a scan of all favorites. The update is a pipeline
    that keeps the dates when the state already holds, so repeating a write changes
    nothing. Switching on upserts (a target's first favorite creates its record);
    switching off never creates one.
    """
    already = {"$eq": ["$favorite", favorite]}
    state: dict[str, Any] = {
        "favorite": favorite,
        "updated_at": _unless(already, "$updated_at", now),
    }
    if favorite:
        state["favorited_at"] = _unless(already, "$favorited_at", now)
    return _key(instance, target), [{"$set": state}], favorite


def _unless(condition: dict[str, Any], kept: str, value: datetime) -> dict[str, Any]:
    """``kept`` (a field) when ``condition`` holds, else ``value``."""
    return {"$cond": [condition, kept, value]}


def _key(instance: str, target: FavoriteTarget) -> dict[str, Any]:
    return {
        "instance": instance,
        "type": target.type.value,
        "message_id": target.message_id,
        "chat_jid": target.chat_jid,
    }


def _chats_query(instance: str, chat_jids: list[str]) -> dict[str, Any]:
    type = FavoriteType.CHAT.value
    return {"instance": instance, "type": type, "message_id": None, "chat_jid": {"$in": chat_jids}}


def _messages_query(instance: str, message_ids: list[str]) -> dict[str, Any]:
    return {
        "instance": instance,
        "type": FavoriteType.MESSAGE.value,
        "message_id": {"$in": message_ids},
    }


def _current(where: FavoriteFilter) -> dict[str, Any]:
    query: dict[str, Any] = {"instance": where.instance, "favorite": True}
    if where.type is not None:
        query["type"] = where.type.value
    if where.chat_jid is not None:
        query["chat_jid"] = where.chat_jid
    return query
