"""Favorite operations, shared by the REST route and the GraphQL schema.

Each rule is written here once: the order of the checks, ``messageId`` taking precedence
over ``number``, the connected-instance requirement for writes, and the messages clients
see. The callers only translate their own input and output.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from favgate.errors import InstanceNotConnected, MessageNotFound, TargetRequired
from favgate.resolvers.identities import resolve_chat
from favgate.resolvers.jids import normalize_number
from favgate.resolvers.pagination import decode_cursor, encode_cursor, page_size
from favgate.resolvers.validation import require_text
from favgate.storage import (
    Favorite,
    FavoriteFilter,
    FavoriteTarget,
    FavoriteType,
    Instance,
    Storage,
)

MAX_MESSAGE_ID_LENGTH = 128

_MESSAGES = {
    (FavoriteType.CHAT, True): "Chat favorited successfully",
    (FavoriteType.CHAT, False): "Chat unfavorited successfully",
    (FavoriteType.MESSAGE, True): "Message favorited successfully",
    (FavoriteType.MESSAGE, False): "Message unfavorited successfully",
}


@dataclass(frozen=True, slots=True)
class Target:
    """What a request names: a message by id (which wins), or a chat by number or JID.

    ``chat_jid`` is the JID as given; ``resolve_chat`` finds the chat it names.
    """

    message_id: str | None = None
    chat_jid: str | None = None

    @classmethod
    def from_request(cls, number: str | None, message_id: str | None) -> Target:
        """Validate the request's choice of target, in the contract's order of checks."""
        if message_id is not None and message_id.strip():
            return cls(message_id=require_text("messageId", message_id, MAX_MESSAGE_ID_LENGTH))
        if number is not None and number.strip():
            return cls(chat_jid=normalize_number(number))
        raise TargetRequired()

    def resolve(self, chat: str | None) -> FavoriteTarget:
        """What a favorite is recorded on, in ``chat``: for a message, the chat the caller
        found it in (None: ``MessageNotFound``); for a chat, the one its JID names."""
        if self.message_id is None:
            assert chat is not None  # a chat JID always names a chat
            return FavoriteTarget(type=FavoriteType.CHAT, chat_jid=chat)
        if chat is None:
            raise MessageNotFound()
        return FavoriteTarget(type=FavoriteType.MESSAGE, chat_jid=chat, message_id=self.message_id)


@dataclass(frozen=True, slots=True)
class FavoriteResult:
    """The outcome of ``set_favorite``: the six fields of the REST success body, and the
    record as stored after the write when it was asked for (None when it was not, or when
    none exists: a target switched off that never was on), which GraphQL returns and REST
    leaves out."""

    message: str
    chat_jid: str
    message_id: str | None
    favorite: bool
    type: FavoriteType
    success: bool = True
    record: Favorite | None = None

    @classmethod
    def of(
        cls, target: FavoriteTarget, favorite: bool, record: Favorite | None = None
    ) -> FavoriteResult:
        return cls(
            message=_MESSAGES[target.type, favorite],
            chat_jid=target.chat_jid,
            message_id=target.message_id,
            favorite=favorite,
            type=target.type,
            record=record,
        )


async def set_favorite(
    storage: Storage, instance: Instance, target: Target, favorite: bool, *, record: bool = False
) -> FavoriteResult:
    """Favorite or unfavorite ``target``; idempotent, and a no-op on the database if the
    state already holds. With ``record``, the result carries the record as the write
    left it, at no extra round trip."""
    if not instance.connected:
        raise InstanceNotConnected()
    resolved = await _resolve(storage, instance, target)
    stored = await storage.favorites.set(instance.name, resolved, favorite, now(), returning=record)
    return FavoriteResult.of(resolved, favorite, stored)


async def get_favorite(storage: Storage, instance: Instance, target: Target) -> Favorite | None:
    """The favorite record of ``target``, current or switched off; None if there never was one."""
    if target.message_id is not None:
        return await storage.favorites.get_message(instance.name, target.message_id)
    return await storage.favorites.get(instance.name, await _resolve(storage, instance, target))


@dataclass(frozen=True, slots=True)
class FavoritePage:
    favorites: list[Favorite]
    has_next_page: bool
    # Counting is a separate query, run only if the client asks for the total.
    count: Callable[[], Awaitable[int]]

    def cursor(self, favorite: Favorite) -> str:
        return encode_cursor(favorite)

    @property
    def end_cursor(self) -> str | None:
        return encode_cursor(self.favorites[-1]) if self.favorites else None


async def list_favorites(
    storage: Storage,
    instance: Instance,
    *,
    type: FavoriteType | None = None,
    chat: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> FavoritePage:
    """Current favorites of ``instance``, newest first, from the cursor ``after``."""
    chat_jid = None if chat is None else normalize_number(chat, "chatJid")
    where = FavoriteFilter(
        instance=instance.name,
        type=type,
        chat_jid=None if chat_jid is None else await resolve_chat(storage, instance.name, chat_jid),
    )
    size = page_size(first)
    position = None if after is None else decode_cursor(after)
    # One more than asked tells whether a next page exists, even when zero are asked.
    found = await storage.favorites.page(where, position, size + 1)
    return FavoritePage(
        favorites=found[:size],
        has_next_page=len(found) > size,
        count=lambda: storage.favorites.count(where),
    )


async def _resolve(storage: Storage, instance: Instance, target: Target) -> FavoriteTarget:
    if target.message_id is not None:
        return target.resolve(await storage.messages.chat_of(instance.name, target.message_id))
    assert target.chat_jid is not None  # from_request guarantees one of the two
    return target.resolve(await resolve_chat(storage, instance.name, target.chat_jid))


def now() -> datetime:
    # BSON dates hold milliseconds; truncate now so what is returned equals what is stored.
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
