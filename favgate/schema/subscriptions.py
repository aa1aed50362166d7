"""The Subscription root: live favorite changes, over the WebSocket on ``/graphql``.

Each subscription authorizes like any field, then follows the change stream of the
database (``favgate.storage.changes``), so it hears of writes made through any gateway
process, REST or GraphQL. The stream is open before the first event is awaited: a bad
token, an unreachable instance or a database without change streams answer an ``error``
message at once, never a silent, hanging subscription.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import strawberry

from favgate.errors import FavgateError
from favgate.metrics import OPEN_SUBSCRIPTIONS
from favgate.schema.context import Context
from favgate.schema.errors import public_or_masked
from favgate.schema.types import Favorite, FavoriteType, Info
from favgate.storage import FavoriteType as StoredFavoriteType
from favgate.storage import Subscriber


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="The favorites of an instance (of one type, if given) as they change: "
        "each favorite or unfavorite made through any gateway, REST or GraphQL. "
        "Repeating a request that changes nothing sends nothing."
    )
    async def favorite_changed(
        self,
        info: Info,
        instance: str,
        type: FavoriteType | None = None,  # type: ignore[valid-type]
    ) -> AsyncGenerator[Favorite, None]:
        # A coroutine that returns the stream, rather than a generator: its errors are
        # raised before the first event, where they become the operation's error message.
        found = await info.context.access.instance(instance)
        stored_type = type if isinstance(type, StoredFavoriteType) else None
        # Grouped by connection (one context each): its messages of a change leave together.
        subscriber = await info.context.storage.changes.subscribe(
            found.name, stored_type, group=info.context
        )
        return _favorites(subscriber, info.context)


async def _favorites(subscriber: Subscriber, context: Context) -> AsyncGenerator[Favorite, None]:
    OPEN_SUBSCRIPTIONS.inc()
    try:
        async with aclosing(subscriber):  # leaves the stream, whatever ends the subscription
            async for favorite in subscriber:
                event = Favorite.from_record(favorite, context)
                # The change itself, the same object for every subscriber: subscriptions
                # of one document execute it once (favgate.schema.execution).
                event.shared_event_key = favorite
                yield event
    except FavgateError:
        raise  # SERVICE_UNAVAILABLE when the database stays away
    except Exception as exc:  # a driver error or a bug: never shown as it is
        raise public_or_masked(exc) from exc
    finally:
        OPEN_SUBSCRIPTIONS.dec()
