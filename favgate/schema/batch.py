"""``setFavorites``: its input and per-item outcome types, and the field's work.

Each item's outcome is a ``FavoriteOutcome``: the ``FavoriteResult`` that ``setFavorite``
returns, or a ``FavoriteError`` (``success: false``, the REST error message and the
GraphQL code) for an item that failed alone. Both carry ``success`` and ``message``, so a
client that only needs those selects them without fragments.
"""

from __future__ import annotations

import strawberry

from favgate import resolvers
from favgate.errors import FavgateError
from favgate.schema.context import Context
from favgate.schema.selection import selects
from favgate.schema.types import FavoriteOutcome, FavoriteResult, Info


@strawberry.input(
    description="One item of setFavorites: a chat by number or JID, or one message by id "
    "(messageId takes precedence)."
)
class FavoriteInput:
    number: str | None = None
    message_id: str | None = None
    favorite: bool

    def to_item(self) -> resolvers.FavoriteItem:
        return resolvers.FavoriteItem(
            favorite=self.favorite, number=self.number, message_id=self.message_id
        )


@strawberry.type(
    description="An item of setFavorites that failed on its own: the message REST would "
    "answer and the code of the GraphQL error it would be (BAD_USER_INPUT, NOT_FOUND)."
)
class FavoriteError(FavoriteOutcome):
    success: bool
    message: str
    code: str

    @classmethod
    def from_error(cls, error: FavgateError) -> FavoriteError:
        return cls(success=False, message=error.message, code=error.code)


async def set_favorites(
    info: Info, instance: str, items: list[FavoriteInput]
) -> list[FavoriteOutcome]:
    found = await info.context.access.instance(instance)
    # Each item was paid for before the operation ran (favgate.schema.cost).
    resolvers.check_batch_size(items)
    outcomes = await resolvers.set_favorites(
        info.context.storage,
        found,
        [item.to_item() for item in items],
        # The records cost a query after the write: read only when asked for.
        records=selects(info, "record"),
    )
    return [_outcome(outcome, info.context) for outcome in outcomes]


def _outcome(outcome: resolvers.ItemOutcome, context: Context) -> FavoriteOutcome:
    if isinstance(outcome, FavgateError):
        return FavoriteError.from_error(outcome)
    return FavoriteResult.from_result(outcome, context)
