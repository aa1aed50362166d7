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
  through this ``Storage`` marks its JID as favorited at once, so that the next request
  for another spelling of the chat finds it without waiting for the TTL.

Changes made through this ``Storage`` clear what they could have made stale once they are
done, so a process reads its own writes (the CLI, tests). Changes made elsewhere (another
process, the upstream engine) take effect within the TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from favgate.cache import MISS, Lookup, LruCache
from favgate.config import MAX_CACHE_TTL
from favgate.storage.chats import Chats, Sighting
from favgate.storage.directory import Directory, Owner
from favgate.storage.favorites import Favorites
from favgate.storage.messages import Messages
from favgate.storage.records import Caller, FavoriteTarget, FavoriteType, Instance, InstanceStatus

# Bounds on memory: a flood of random tokens evicts old entries instead of growing.
MAX_CALLERS = 10_000
MAX_INSTANCES = 10_000
MAX_MESSAGE_CHATS = 65_536
MAX_SIGHTINGS = 65_536


class CachingDirectory(Directory):
    def __init__(self, database: Any, ttl: float) -> None:
        if not 0 <= ttl <= MAX_CACHE_TTL:
            raise ValueError(f"the cache TTL must be from 0 to {MAX_CACHE_TTL} seconds")
        super().__init__(database)
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

    async def create_account(self, name: str, token_hash: str) -> None:
        await super().create_account(name, token_hash)
        self._forget()

    async def create_instance(
        self, name: str, account: str, status: InstanceStatus, token_hash: str
    ) -> None:
        await super().create_instance(name, account, status, token_hash)
        self._forget()

    async def set_instance_status(self, name: str, status: InstanceStatus) -> bool:
        changed = await super().set_instance_status(name, status)
        self._forget()
        return changed

    async def reset_account(self, name: str, token_hash: str) -> None:
        await super().reset_account(name, token_hash)
        self._forget()

    async def reset_instance(
        self, name: str, account: str, status: InstanceStatus, token_hash: str
    ) -> None:
        await super().reset_instance(name, account, status, token_hash)
        self._forget()

    async def add_token(self, owner: Owner, name: str, token_hash: str) -> bool:
        added = await super().add_token(owner, name, token_hash)
        self._forget()
        return added

    async def revoke_token(self, owner: Owner, name: str, token_hash: str) -> bool:
        revoked = await super().revoke_token(owner, name, token_hash)
        self._forget()
        return revoked

    async def revoke_all(self, owner: Owner, name: str) -> int | None:
        revoked = await super().revoke_all(owner, name)
        self._forget()
        return revoked

    async def delete_instance(self, name: str, purge: bool = False) -> int | None:
        deleted = await super().delete_instance(name, purge)
        self._forget()
        return deleted

    def _forget(self) -> None:
        # Writes are rare (the CLI, demo seeding): forgetting everything is simplest, and
        # the old hash of a rotated token is not known here. Lookups in flight during the
        # write are not remembered either (see Lookup.forget).
        self._caller_lookup.forget()
        self._instance_lookup.forget()


class CachingMessages(Messages):
    def __init__(self, database: Any) -> None:
        super().__init__(database)
        self._chat_cache: LruCache[tuple[str, str], str] = LruCache(MAX_MESSAGE_CHATS)

    async def chat_of(self, instance: str, message_id: str) -> str | None:
        chat = self._chat_cache.get((instance, message_id))
        if chat is MISS:
            found = await super().chat_of(instance, message_id)
            if found is None:
                return None
            self._chat_cache.put((instance, message_id), found)
            chat = found
        return chat

    async def upsert_many(self, instance: str, messages: Iterable[Mapping[str, Any]]) -> int:
        # An import may correct a message's chat: drop what it replaces.
        messages = list(messages)
        for message in messages:
            self._chat_cache.discard((instance, message["id"]))
        return await super().upsert_many(instance, messages)


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


class CachingFavorites(Favorites):
    """Favorites whose chat writes are told to the ``CachingChats`` of the same Storage."""

    def __init__(self, database: Any, chats: CachingChats) -> None:
        super().__init__(database)
        self._chats = chats

    async def set(
        self, instance: str, target: FavoriteTarget, favorite: bool, now: datetime
    ) -> None:
        await super().set(instance, target, favorite, now)
        self._note(instance, [(target, favorite)])

    async def set_many(
        self, instance: str, states: Iterable[tuple[FavoriteTarget, bool]], now: datetime
    ) -> None:
        states = list(states)
        await super().set_many(instance, states, now)
        self._note(instance, states)

    def _note(self, instance: str, states: Iterable[tuple[FavoriteTarget, bool]]) -> None:
        # Switching on creates the record if there was none; switching off never does.
        for target, favorite in states:
            if favorite and target.type is FavoriteType.CHAT:
                self._chats.favorited(instance, target.chat_jid)
