"""The Query and Mutation roots: each field authorizes, then calls one shared resolver."""

from __future__ import annotations

import strawberry

from favgate import resolvers
from favgate.schema.types import (
    Favorite,
    FavoriteConnection,
    FavoriteResult,
    FavoriteType,
    Info,
)
from favgate.storage import FavoriteType as StoredFavoriteType


@strawberry.type
class Query:
    @strawberry.field(description="Current favorites of an instance, newest first.")
    async def favorites(
        self,
        info: Info,
        instance: str,
        type: FavoriteType | None = None,  # type: ignore[valid-type]
        chat_jid: str | None = None,
        first: int | None = resolvers.DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> FavoriteConnection:
        found = await info.context.access.instance(instance)
        page = await resolvers.list_favorites(
            info.context.storage,
            found,
            type=_stored_type(type),
            chat=chat_jid,
            first=first,
            after=after,
        )
        return FavoriteConnection.from_page(page)

    @strawberry.field(
        description="The favorite record of a chat or a message (messageId wins), "
        "current or switched off; null if it was never favorited."
    )
    async def favorite(
        self,
        info: Info,
        instance: str,
        number: str | None = None,
        message_id: str | None = None,
    ) -> Favorite | None:
        found = await info.context.access.instance(instance)
        target = resolvers.Target.from_request(number, message_id)
        record = await resolvers.get_favorite(info.context.storage, found, target)
        return None if record is None else Favorite.from_record(record)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Favorite (or, with favorite: false, unfavorite) a chat by number or "
        "JID, or one message by id; messageId takes precedence. Idempotent."
    )
    async def set_favorite(
        self,
        info: Info,
        instance: str,
        number: str | None = None,
        message_id: str | None = None,
        *,
        favorite: bool,
    ) -> FavoriteResult:
        found = await info.context.access.instance(instance)
        target = resolvers.Target.from_request(number, message_id)
        result = await resolvers.set_favorite(info.context.storage, found, target, favorite)
        return FavoriteResult.from_result(result)


def _stored_type(value: object) -> StoredFavoriteType | None:
    # Strawberry hands back members of the enum it wraps, which is the storage enum.
    return value if isinstance(value, StoredFavoriteType) else None
