"""Favoriting many chats and messages in one request: ``setFavorites``.

The rules of ``set_favorite`` apply to every item (the same target validation, message
lookup, chat identities and messages), at a fixed cost whatever the number of items: one
query for all the messages named, one for the chat identities not yet known, one bulk
write for all the favorites (and, when the caller wants the records, two queries at most
to read them back). An item's own error (a bad number,
an unknown message, no target) is its result, and the other items go on; errors of the
whole request (the token, the instance, too many items) fail it all.

Items run as if in order: when several name the same target, the last decides its state,
and the target gets one write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from favgate.errors import (
    BadRequest,
    FavgateError,
    InstanceNotConnected,
    InvalidArgument,
    MessageNotFound,
)
from favgate.resolvers.favorites import FavoriteResult, Target, now
from favgate.resolvers.identities import resolve_chats
from favgate.storage import FavoriteTarget, Instance, Message, Storage

MAX_ITEMS = 100


@dataclass(frozen=True, slots=True)
class FavoriteItem:
    """One item of a batch, as the client sent it."""

    favorite: bool
    number: str | None = None
    message_id: str | None = None


# An item's outcome: its result, or the error that is its alone.
ItemOutcome = FavoriteResult | FavgateError


def check_batch_size(items: Sequence[object]) -> None:
    """``InvalidArgument`` when a batch holds more than ``MAX_ITEMS`` items."""
    if len(items) > MAX_ITEMS:
        raise InvalidArgument("items", f"at most {MAX_ITEMS} items per request; got {len(items)}")


async def set_favorites(
    storage: Storage, instance: Instance, items: Sequence[FavoriteItem], *, records: bool = False
) -> list[ItemOutcome]:
    """Favorite or unfavorite every item; one outcome per item, in order. With
    ``records``, each result carries its target's record as the batch left it, read back
    after the write (a bulk write returns the ids it inserted, not the records)."""
    check_batch_size(items)
    if not instance.connected:
        raise InstanceNotConnected()
    targets = [_target(item) for item in items]
    message_ids = [t.message_id for t in targets if isinstance(t, Target) and t.message_id]
    messages = await storage.messages.get_many(instance.name, message_ids)
    chat_jids = [t.chat_jid for t in targets if isinstance(t, Target) and t.message_id is None]
    chats = await resolve_chats(storage, instance.name, [jid for jid in chat_jids if jid])
    resolved = [_resolve(target, messages, chats) for target in targets]
    # A dict keeps each target once, at its first place, with the last item's state.
    states = {
        target: item.favorite
        for target, item in zip(resolved, items, strict=True)
        if isinstance(target, FavoriteTarget)
    }
    await storage.favorites.set_many(instance.name, states.items(), now())
    stored = await storage.favorites.get_many(instance.name, states) if records else {}
    return [
        FavoriteResult.of(target, item.favorite, stored.get(target))
        if isinstance(target, FavoriteTarget)
        else target
        for target, item in zip(resolved, items, strict=True)
    ]


def _target(item: FavoriteItem) -> Target | BadRequest:
    try:
        return Target.from_request(item.number, item.message_id)
    except BadRequest as exc:
        return exc


def _resolve(
    target: Target | BadRequest, messages: Mapping[str, Message], chats: Mapping[str, str]
) -> FavoriteTarget | FavgateError:
    if isinstance(target, BadRequest):
        return target
    if target.message_id is None:
        assert target.chat_jid is not None  # from_request guarantees one of the two
        return target.resolve(chats[target.chat_jid])
    message = messages.get(target.message_id)
    try:
        return target.resolve(None if message is None else message.chat_jid)
    except MessageNotFound as exc:
        return exc
