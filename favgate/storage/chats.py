"""What an instance's data says of chat identities, for ``favgate.resolvers.identities``.

For each JID asked about: the chats whose messages carry it as their ``chat_jid`` or
their ``chat_jid_alt``, and whether a chat favorite is recorded under it. All of it is
one ``aggregate`` round trip, whatever the number of JIDs: it starts from the instance's
own document (found by its unique name) and ``$lookup``s each JID through an index that
leads with the looked-up field, so neither MongoDB nor SecantusDB scans a collection (an
``$or`` of two fields, or ``$unionWith``, would make SecantusDB scan).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from favgate.storage import driver
from favgate.storage.indexes import FAVORITES, INSTANCES, MESSAGES
from favgate.storage.records import FavoriteType


@dataclass(frozen=True, slots=True)
class Sighting:
    """Where one JID appears in an instance's data."""

    # The chat_jid of messages whose chat_jid or chat_jid_alt is the JID.
    chats: frozenset[str] = frozenset()
    # Whether a chat favorite, current or not, is recorded under the JID.
    favorited: bool = False

    @property
    def from_messages(self) -> bool:
        return bool(self.chats)


class Chats:
    def __init__(self, database: Any) -> None:
        self._instances = database[INSTANCES]

    async def sightings(self, instance: str, jids: Iterable[str]) -> dict[str, Sighting]:
        """Each of ``jids``' sighting in ``instance``; one round trip."""
        wanted = list(dict.fromkeys(jids))
        if not wanted:
            return {}
        docs = await driver.aggregate(self._instances, _pipeline(instance, wanted), len(wanted))
        found = {doc["jid"]: _sighting(doc) for doc in docs}
        return {jid: found.get(jid, Sighting()) for jid in wanted}


def _pipeline(instance: str, jids: list[str]) -> list[dict[str, Any]]:
    def first(name: str, collection: str, field: str, **where: str) -> dict[str, Any]:
        """The first document of ``collection`` whose ``field`` is the JID, as ``name``."""
        lookup = {
            "from": collection,
            "localField": "jid",
            "foreignField": field,
            "pipeline": [
                {"$match": {"instance": instance, **where}},
                {"$limit": 1},
                {"$project": {"_id": 0, "chat_jid": 1}},
            ],
            "as": name,
        }
        return {"$lookup": lookup}

    return [
        {"$match": {"name": instance}},
        {"$project": {"_id": 0, "jid": {"$literal": jids}}},
        {"$unwind": "$jid"},
        first("direct", MESSAGES, "chat_jid"),
        # A chat known by two identities: one message tells which it is stored under.
        first("alternate", MESSAGES, "chat_jid_alt"),
        first("favorite", FAVORITES, "chat_jid", type=FavoriteType.CHAT.value),
    ]


def _sighting(doc: dict[str, Any]) -> Sighting:
    chats = [message["chat_jid"] for message in doc["direct"] + doc["alternate"]]
    return Sighting(chats=frozenset(map(str, chats)), favorited=bool(doc["favorite"]))
