"""The Query and Mutation roots: each field authorizes, then calls one shared resolver."""

from __future__ import annotations

import strawberry

from favgate import resolvers
from favgate.schema import batch, webhooks
from favgate.schema.batch import FavoriteInput
from favgate.schema.nodes import Node, favorite_key
from favgate.schema.selection import selects
from favgate.schema.types import (
    Favorite,
    FavoriteConnection,
    FavoriteOutcome,
    FavoriteResult,
    FavoriteType,
    Info,
    Instance,
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
        if not selects(info, "edges", "node", "message"):
            return FavoriteConnection.from_page(page, info.context)
        # The page's messages in one query now, rather than a DataLoader batch later.
        ids = [f.target.message_id for f in page.favorites if f.target.message_id is not None]
        messages = await info.context.storage.messages.get_many(found.name, ids)
        return FavoriteConnection.from_page(page, info.context, messages)

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
        return None if record is None else Favorite.from_record(record, info.context)

    @strawberry.field(
        description="The object with this id (Relay's global object identification); "
        "null when the token may read none: an unknown id, another tenant's, and a string "
        "that is no id all answer null alike."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        record = await resolvers.favorite_by_id(
            info.context.storage, info.context.access, favorite_key(id)
        )
        return None if record is None else Favorite.from_record(record, info.context)

    @strawberry.field(
        description="The instances the token reaches, by name: all of its account's for "
        "an account token, its own for an instance token."
    )
    async def instances(self, info: Info) -> list[Instance]:
        return [Instance.from_record(found) for found in await info.context.access.instances()]

    @strawberry.field(description="The webhook endpoints of an instance, with their backlog.")
    async def webhooks(self, info: Info, instance: str) -> list[webhooks.Webhook]:
        return await webhooks.webhooks(info, instance)


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
        result = await resolvers.set_favorite(
            info.context.storage, found, target, favorite, record=selects(info, "record")
        )
        return FavoriteResult.from_result(result, info.context)

    @strawberry.mutation(
        description=f"setFavorite for up to {resolvers.MAX_ITEMS} items in one database "
        "write: one outcome per item, in order. An item's own error (a bad number, an "
        "unknown message) is its outcome, a FavoriteError; errors of the request (token, "
        "instance, too many items) fail it all. Each item counts against the rate limit; "
        "when several items name one target, the last one decides its state."
    )
    async def set_favorites(
        self, info: Info, instance: str, items: list[FavoriteInput]
    ) -> list[FavoriteOutcome]:
        return await batch.set_favorites(info, instance, items)

    @strawberry.mutation(
        description="Send the instance's favorite changes to url, signed as Standard Webhooks "
        "says. The URL's host must resolve to public addresses. Returns the signing secret, "
        "shown this once."
    )
    async def add_webhook(self, info: Info, instance: str, url: str) -> webhooks.NewWebhook:
        return await webhooks.add(info, instance, url)

    @strawberry.mutation(description="Remove a webhook endpoint and its pending deliveries.")
    async def remove_webhook(self, info: Info, id: strawberry.ID) -> bool:
        return await webhooks.remove(info, id)


def _stored_type(value: object) -> StoredFavoriteType | None:
    # Strawberry hands back members of the enum it wraps, which is the storage enum.
    return value if isinstance(value, StoredFavoriteType) else None
