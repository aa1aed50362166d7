"""The repositories' hot lookups, remembered per ``Storage``.

Every request looks up its token's caller and its instance; a message favorite also looks
up the message's chat. At steady state these would cost more round trips than the write
itself, so:

- Callers and instances are kept ``ttl`` seconds (``FAVGATE_CACHE_TTL_SECONDS``, at most
  2): a revoked token or a disconnected instance takes effect within that delay, wherever
  the change was made. Negative answers are kept too, for the same delay: a flood of
  requests with bad tokens then costs the database one lookup per token and per ``ttl``,
  and a token created elsewhere becomes valid within ``ttl``, which is acceptable.
- A message's chat is kept without expiry (a message never moves to another chat), in a
  bounded LRU. Only found messages are kept: the upstream engine may write a message a
  moment after a client first asks for it.
- A JID's sighting (``storage.chats``) is kept without expiry once messages name its chat
  (they are never moved either); one known from favorites alone, or not at all, is kept
  ``ttl`` seconds, for messages the engine may write later. A chat favorite written
  through this ``Storage`` marks its JID as favorited at once (``Favorites`` tells
  ``CachingChats.favorited``), so that the next request for another spelling of the chat
  finds it without waiting for the TTL.

Writes made through this ``Storage`` clear what they could have made stale once they are
done (``WatchedDatabase``: the writes themselves, not an override per write method), so a
process reads its own writes (the CLI, tests). Changes made elsewhere (another process,
the upstream engine) take effect within the TTL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from favgate.cache import MISS, Lookup, LruCache
from favgate.config import MAX_CACHE_TTL
from favgate.storage.chats import Chats, Sighting
from favgate.storage.directory import Directory
from favgate.storage.indexes import ACCOUNTS, INSTANCES, MESSAGES
from favgate.storage.messages import Messages
from favgate.storage.records import Caller, Instance

# Bounds on memory: a flood of random tokens evicts old entries instead of growing.
MAX_CALLERS = 10_000
MAX_INSTANCES = 10_000
MAX_MESSAGE_CHATS = 65_536
MAX_SIGHTINGS = 65_536


# The collection methods that write. A cache over a collection is cleared after each of
# them, whichever repository method called it.
WRITES = frozenset(
    {
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "replace_one",
        "delete_one",
        "delete_many",
        "find_one_and_update",
        "find_one_and_replace",
        "find_one_and_delete",
        "bulk_write",
        "drop",
    }
)


class WatchedDatabase:
    """A database whose ``watched`` collections call ``changed`` after every write.

    Repositories are built over it, so their caches are cleared by the writes themselves:
    a write method added to a repository needs no cache code of its own to keep them
    fresh."""

    def __init__(self, database: Any, watched: Iterable[str], changed: Callable[[], None]):
        self._database = database
        self._watched = frozenset(watched)
        self._changed = changed

    def __getitem__(self, name: str) -> Any:
        collection = self._database[name]
        if name in self._watched:
            return _WatchedCollection(collection, self._changed)
        return collection


class _WatchedCollection:
    def __init__(self, collection: Any, changed: Callable[[], None]) -> None:
        self._collection = collection
        self._changed = changed

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if name not in WRITES:
            return attribute

        async def write(*args: Any, **kwargs: Any) -> Any:
            try:
                return await attribute(*args, **kwargs)
            finally:  # a failed write may have been applied all the same
                self._changed()

        return write


class CachingDirectory(Directory):
    """The directory, its caller and instance lookups cached; any write to accounts or
    instances clears them."""

    def __init__(self, database: Any, ttl: float) -> None:
        if not 0 <= ttl <= MAX_CACHE_TTL:
            raise ValueError(f"the cache TTL must be from 0 to {MAX_CACHE_TTL} seconds")
        super().__init__(WatchedDatabase(database, (ACCOUNTS, INSTANCES), self._forget))
        self._caller_lookup: Lookup[str, Caller | None] = Lookup(
            LruCache(MAX_CALLERS, ttl), super().find_caller
        )
        self._instance_lookup: Lookup[str, Instance | None] = Lookup(
            LruCache(MAX_INSTANCES, ttl), super().find_instance
        )

    async def find_caller(self, token_hash: str) -> Caller | None:
        return await self._caller_lookup(token_hash)

    async def find_instance(self, name: str) -> Instance | None:
        return await self._instance_lookup(name)

    def _forget(self) -> None:
        # Writes are rare (the CLI, demo seeding): forgetting everything is simplest, and
        # the old hash of a rotated token is not known here. Lookups in flight during the
        # write are not remembered either (see Lookup.forget).
        self._caller_lookup.forget()
        self._instance_lookup.forget()


class CachingMessages(Messages):
    """Messages, each one's chat cached; an import (any write) clears the cache, since it
    may correct a message's chat."""

    def __init__(self, database: Any) -> None:
        self._chat_cache: LruCache[tuple[str, str], str] = LruCache(MAX_MESSAGE_CHATS)
        super().__init__(WatchedDatabase(database, (MESSAGES,), self._chat_cache.clear))

    async def chat_of(self, instance: str, message_id: str) -> str | None:
        chat = self._chat_cache.get((instance, message_id))
        if chat is MISS:
            found = await super().chat_of(instance, message_id)
            if found is None:
                return None
            self._chat_cache.put((instance, message_id), found)
            chat = found
        return chat


class CachingChats(Chats):
    def __init__(self, database: Any, ttl: float) -> None:
        super().__init__(database)
        self._lasting: LruCache[tuple[str, str], Sighting] = LruCache(MAX_SIGHTINGS)
        self._recent: LruCache[tuple[str, str], Sighting] = LruCache(MAX_SIGHTINGS, ttl)

    async def sightings(self, instance: str, jids: Iterable[str]) -> dict[str, Sighting]:
        wanted = list(dict.fromkeys(jids))
        known = {jid: self._cached(instance, jid) for jid in wanted}
        cold = [jid for jid, sighting in known.items() if sighting is None]
        if not cold:
            return {jid: sighting for jid, sighting in known.items() if sighting is not None}
        found = await super().sightings(instance, cold)
        for jid, sighting in found.items():
            self._keep(instance, jid, sighting)
        return {jid: known[jid] or found[jid] for jid in wanted}

    def favorited(self, instance: str, jid: str) -> None:
        """Note that a chat favorite is now recorded under ``jid``."""
        sighting = self._cached(instance, jid)
        if sighting is not None:
            self._keep(instance, jid, replace(sighting, favorited=True))

    def _cached(self, instance: str, jid: str) -> Sighting | None:
        for cache in (self._lasting, self._recent):
            sighting = cache.get((instance, jid))
            if sighting is not MISS:
                return sighting
        return None

    def _keep(self, instance: str, jid: str, sighting: Sighting) -> None:
        cache = self._lasting if sighting.from_messages else self._recent
        cache.put((instance, jid), sighting)
