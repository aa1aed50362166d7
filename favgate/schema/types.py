"""GraphQL types. They wrap storage records and resolver results; they never touch the driver."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from datetime import datetime
from typing import Any, cast

import strawberry

from favgate import resolvers, storage
from favgate.schema.context import Context
from favgate.schema.nodes import FAVORITE, Node, global_id

Info = strawberry.Info[Context, None]

FavoriteType = strawberry.enum(storage.FavoriteType, name="FavoriteType")
InstanceStatus = strawberry.enum(storage.InstanceStatus, name="InstanceStatus")


@strawberry.type(description="A WhatsApp instance the token reaches.")
class Instance:
    name: str
    status: InstanceStatus  # type: ignore[valid-type]

    @classmethod
    def from_record(cls, instance: storage.Instance) -> Instance:
        return cls(name=instance.name, status=instance.status)


@strawberry.type(description="A WhatsApp message, as the upstream engine stored it.")
class Message:
    id: str
    chat_jid: str
    from_me: bool
    timestamp: datetime | None
    text: str | None

    @classmethod
    def from_record(cls, message: storage.Message) -> Message:
        return cls(
            id=message.id,
            chat_jid=message.chat_jid,
            from_me=message.from_me,
            timestamp=message.timestamp,
            text=message.text,
        )


@strawberry.type(
    description="The favorite state of a chat or of one message. Its id is global and "
    "opaque: Query.node finds the record by it."
)
class Favorite(Node):
    id: strawberry.ID
    type: FavoriteType  # type: ignore[valid-type]
    chat_jid: str
    message_id: str | None
    favorite: bool
    favorited_at: datetime
    updated_at: datetime
    # A plain field, read without a resolver (no Info, no coroutine per edge): the message
    # itself when it was loaded with the favorite (a listing loads its page's), else a
    # MessageLoad, which graphql-core awaits like a resolver's awaitable.
    message: Message | None = strawberry.field(
        description="The favorited message; null for a chat favorite."
    )
    instance: strawberry.Private[str]
    # Set on a change a subscription delivers: the change, which every subscription of
    # the same document resolves alike (favgate.schema.shared_events.SharedEvents).
    shared_event_key: strawberry.Private[storage.Favorite | None] = None

    @classmethod
    def from_record(
        cls,
        favorite: storage.Favorite,
        context: Context,
        messages: Mapping[str, storage.Message] | None = None,
    ) -> Favorite:
        """``favorite``; with ``messages`` (by id) when they were loaded along with it, else
        its message loads through ``context``'s DataLoader if it is asked for."""
        return cls(
            message=_message(favorite, context, messages),
            id=global_id(FAVORITE, favorite.id),
            type=favorite.target.type,
            chat_jid=favorite.target.chat_jid,
            message_id=favorite.target.message_id,
            favorite=favorite.favorite,
            favorited_at=favorite.favorited_at,
            updated_at=favorite.updated_at,
            instance=favorite.instance,
        )


def _message(
    favorite: storage.Favorite, context: Context, messages: Mapping[str, storage.Message] | None
) -> Message | None:
    message_id = favorite.target.message_id
    if message_id is None:
        return None
    if messages is None:
        return cast("Message | None", MessageLoad(context, favorite.instance, message_id))
    loaded = messages.get(message_id)
    return None if loaded is None else Message.from_record(loaded)


class MessageLoad:
    """A favorite's message, loaded through the request's DataLoader when (and only if)
    graphql-core awaits it: an awaitable, not a coroutine, so that one left unawaited (its
    field not selected) costs nothing and warns of nothing."""

    __slots__ = ("context", "instance", "message_id")

    def __init__(self, context: Context, instance: str, message_id: str) -> None:
        self.context, self.instance, self.message_id = context, instance, message_id

    def __await__(self) -> Generator[Any, None, Message | None]:
        return _load_message(self.context, self.instance, self.message_id).__await__()


async def _load_message(context: Context, instance: str, message_id: str) -> Message | None:
    record = await context.messages.load((instance, message_id))
    return None if record is None else Message.from_record(record)


@strawberry.interface(
    description="What a favorite request came to: whether it succeeded, and its message."
)
class FavoriteOutcome:
    success: bool
    message: str


@strawberry.type(
    description="The outcome of setFavorite: the fields of the REST success body, and the "
    "record as stored after the change."
)
class FavoriteResult(FavoriteOutcome):
    success: bool
    message: str
    chat_jid: str
    message_id: str | None
    favorite: bool
    type: FavoriteType  # type: ignore[valid-type]
    record: Favorite | None = strawberry.field(
        description="The favorite record after the change, with its id, for a client's "
        "cache; null when unfavoriting a target that was never favorited (no record is "
        "made for it). In setFavorites, the target's state once the whole batch is applied."
    )

    @classmethod
    def from_result(cls, result: resolvers.FavoriteResult, context: Context) -> FavoriteResult:
        record = result.record
        return cls(
            success=result.success,
            message=result.message,
            chat_jid=result.chat_jid,
            message_id=result.message_id,
            favorite=result.favorite,
            type=result.type,
            record=None if record is None else Favorite.from_record(record, context),
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def _edge_cursor(root: FavoriteEdge) -> str:
    # Encoded only when selected: a page that asks for none spares 20 encodings.
    return root.page.cursor(root.record)


@strawberry.type
class FavoriteEdge:
    cursor: str = strawberry.field(resolver=_edge_cursor)
    node: Favorite
    page: strawberry.Private[resolvers.FavoritePage]
    record: strawberry.Private[storage.Favorite]


@strawberry.type(description="A page of current favorites, newest first.")
class FavoriteConnection:
    edges: list[FavoriteEdge]
    page_info: PageInfo
    page: strawberry.Private[resolvers.FavoritePage]

    @strawberry.field(description="How many current favorites match, across all pages.")
    async def total_count(self) -> int:
        # Counted only when selected: listing without it costs one query less.
        return await self.page.count()

    @classmethod
    def from_page(
        cls,
        page: resolvers.FavoritePage,
        context: Context,
        messages: Mapping[str, storage.Message] | None = None,
    ) -> FavoriteConnection:
        """``page``; with ``messages`` (by id) when they were loaded along with it."""
        edges = [
            FavoriteEdge(
                node=Favorite.from_record(favorite, context, messages), page=page, record=favorite
            )
            for favorite in page.favorites
        ]
        page_info = PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)
        return cls(edges=edges, page_info=page_info, page=page)
