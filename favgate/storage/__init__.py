"""favgate's MongoDB storage: the only package that talks to the driver.

``open_storage`` connects with the configured driver (motor or PyMongo's async client)
and write concern; ``Storage`` groups the collections' repositories. Nothing here imports
Strawberry or Starlette, and nothing above returns or accepts a BSON document.
"""

from __future__ import annotations

from typing import Any

from pymongo import WriteConcern

from favgate.config import DEFAULT_CACHE_TTL, Settings
from favgate.storage import driver
from favgate.storage.caching import CachingDirectory, CachingMessages
from favgate.storage.changes import FavoriteChange, FavoriteChanges, ResumeToken, Subscriber
from favgate.storage.directory import Directory
from favgate.storage.favorites import Favorites
from favgate.storage.indexes import ensure_indexes
from favgate.storage.messages import Messages
from favgate.storage.outbox import Delivery, Outbox
from favgate.storage.ratelimits import Bucket, Charge, Grant, RateLimits
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
    "RateLimits",
    "ResumeToken",
    "Storage",
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
        self.favorites = Favorites(database)
        self.changes = FavoriteChanges(database)
        self.rate_limits = RateLimits(database)
        self.webhooks = Webhooks(database)
        self.outbox = Outbox(database)

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
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
