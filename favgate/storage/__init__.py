"""favgate's MongoDB storage: the only package that talks to the driver.

``open_storage`` connects with the configured driver (motor or PyMongo's async client)
and write concern; ``Storage`` groups the collections' repositories. Nothing here imports
Strawberry or Starlette, and nothing above returns or accepts a BSON document.
"""

from __future__ import annotations

from typing import Any

import pymongo
from pymongo import WriteConcern

from favgate.config import DEFAULT_CACHE_TTL, Settings
from favgate.storage import driver
from favgate.storage.caching import (
    CachingChats,
    CachingDirectory,
    CachingMessages,
)
from favgate.storage.changes import (
    EndpointChange,
    FavoriteChange,
    FavoriteChanges,
    ResumeToken,
    StreamPosition,
    Subscriber,
)
from favgate.storage.chats import Sighting
from favgate.storage.directory import Directory
from favgate.storage.documents import Documents
from favgate.storage.favorites import Favorites
from favgate.storage.indexes import ensure_indexes
from favgate.storage.messages import Messages
from favgate.storage.outbox import Delivery, Outbox
from favgate.storage.ratelimits import Bucket, Charge, Grant, RateLimitWindows
from favgate.storage.records import (
    Caller,
    Favorite,
    FavoriteFilter,
    FavoriteTarget,
    FavoriteType,
    Instance,
    InstanceStatus,
    Message,
    Position,
)
from favgate.storage.webhooks import Webhook, Webhooks, WebhookStats

__all__ = [
    "Bucket",
    "Caller",
    "Charge",
    "Delivery",
    "Documents",
    "EndpointChange",
    "Favorite",
    "FavoriteChange",
    "FavoriteFilter",
    "FavoriteTarget",
    "FavoriteType",
    "Grant",
    "Instance",
    "InstanceStatus",
    "Message",
    "Outbox",
    "Position",
    "RateLimitWindows",
    "ResumeToken",
    "Sighting",
    "Storage",
    "StreamPosition",
    "Subscriber",
    "Webhook",
    "WebhookStats",
    "Webhooks",
    "open_storage",
]


class Storage:
    """The database handle a running gateway (or a CLI command) shares."""

    def __init__(
        self, client: driver.Client, database: Any, cache_ttl: float = DEFAULT_CACHE_TTL
    ) -> None:
        self._client = client
        self._database = database
        # Caches of this Storage's own (see storage.caching): one per app, never shared.
        self.directory: Directory = CachingDirectory(database, cache_ttl)
        self.messages: Messages = CachingMessages(database)
        self.chats = CachingChats(database, cache_ttl)
        self.favorites = Favorites(database, chat_favorited=self.chats.favorited)
        self.changes = FavoriteChanges(database)
        self.rate_limits = RateLimitWindows(database)
        self.documents = Documents(database)
        self.webhooks = Webhooks(database)
        self.outbox = Outbox(database)

    async def ping(self) -> None:
        """Raise if the database does not answer within the deadline.

        The deadline is set here, where the call is made, as well as by the client: motor
        starts the client's own when one of its worker threads runs the command, so a
        ping queued behind operations that a stalled database holds would wait longer.
        """
        deadline = driver.deadline_ms(self._database)
        with pymongo.timeout(None if deadline is None else deadline / 1000):
            await self._database.command("ping")

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._database)

    async def drop_database(self) -> None:
        """Remove every collection; for tests and throwaway databases."""
        await self._client.drop_database(self._database.name)

    async def close(self) -> None:
        await self.changes.close()  # its stream first, while the client still works
        await driver.close(self._client)


def open_storage(settings: Settings) -> Storage:
    """Storage over ``settings.mongodb_uri``; connects lazily, so it never blocks."""
    if settings.mongodb_uri is None:
        raise ValueError("settings.mongodb_uri is not set")
    client = driver.connect(
        settings.mongodb_uri, settings.mongo_driver, settings.database_timeout_ms
    )
    concern = WriteConcern(w=settings.write_concern_w, j=settings.write_journal)
    database = client.get_database(settings.database, write_concern=concern)
    return Storage(client, database, settings.cache_ttl_seconds)
