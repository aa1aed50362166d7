"""GraphQL types. They wrap storage records and resolver results; they never touch the driver."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import cast

import strawberry

from favgate import resolvers, storage
from favgate.schema.context import Context

Info = strawberry.Info[Context, None]

FavoriteType = strawberry.enum(storage.FavoriteType, name="FavoriteType")


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


@strawberry.type(description="The favorite state of a chat or of one message.")
class Favorite:
    id: strawberry.ID
    type: FavoriteType  # type: ignore[valid-type]
    chat_jid: str
    message_id: str | None
    favorite: bool
    favorited_at: datetime
    updated_at: datetime
    instance: strawberry.Private[str]
    # The message, when it was loaded with the favorite (a listing loads its page's).
    loaded_message: strawberry.Private[Message | None] = None
    message_loaded: strawberry.Private[bool] = False

    @strawberry.field(description="The favorited message; null for a chat favorite.")
    def message(self, info: Info) -> Message | None:
        # Synchronous when the message was loaded with its page: no coroutine per edge.
        # Otherwise the DataLoader batches the request's messages; graphql-core awaits
        # the awaitable a resolver returns.
        if self.message_id is None or self.message_loaded:
            return self.loaded_message
        loading = _load_message(info.context, self.instance, self.message_id)
        return cast("Message | None", loading)

    @classmethod
    def from_record(
        cls, favorite: storage.Favorite, messages: Mapping[str, storage.Message] | None = None
    ) -> Favorite:
        """``favorite``; with ``messages`` (by id) when they were loaded along with it."""
        message_id = favorite.target.message_id
        loaded = None if messages is None or message_id is None else messages.get(message_id)
        return cls(
            loaded_message=None if loaded is None else Message.from_record(loaded),
            message_loaded=messages is not None,
            id=strawberry.ID(favorite.id),
            type=favorite.target.type,
            chat_jid=favorite.target.chat_jid,
            message_id=favorite.target.message_id,
            favorite=favorite.favorite,
            favorited_at=favorite.favorited_at,
            updated_at=favorite.updated_at,
            instance=favorite.instance,
        )


async def _load_message(context: Context, instance: str, message_id: str) -> Message | None:
    record = await context.messages.load((instance, message_id))
    return None if record is None else Message.from_record(record)


@strawberry.interface(
    description="What a favorite request came to: whether it succeeded, and its message."
)
class FavoriteOutcome:
    success: bool
    message: str


@strawberry.type(description="The outcome of setFavorite: the fields of the REST success body.")
class FavoriteResult(FavoriteOutcome):
    success: bool
    message: str
    chat_jid: str
    message_id: str | None
    favorite: bool
    type: FavoriteType  # type: ignore[valid-type]

    @classmethod
    def from_result(cls, result: resolvers.FavoriteResult) -> FavoriteResult:
        return cls(
            success=result.success,
            message=result.message,
            chat_jid=result.chat_jid,
            message_id=result.message_id,
            favorite=result.favorite,
            type=result.type,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class FavoriteEdge:
    cursor: str
    node: Favorite


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
        cls, page: resolvers.FavoritePage, messages: Mapping[str, storage.Message] | None = None
    ) -> FavoriteConnection:
        """``page``; with ``messages`` (by id) when they were loaded along with it."""
        edges = [
            FavoriteEdge(
                cursor=page.cursor(favorite), node=Favorite.from_record(favorite, messages)
            )
            for favorite in page.favorites
        ]
        page_info = PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor)
        return cls(edges=edges, page_info=page_info, page=page)
