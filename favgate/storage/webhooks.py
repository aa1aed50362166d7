"""Webhook endpoints: where an instance's favorite changes are pushed, and their secrets.

One document per endpoint, ``_id`` its public id (``wh_`` + 16 hex digits)::

    {_id: "wh_...", instance: <name>, url: <str>, secret: "whsec_...", created_at: <date>}

The signing secret is stored as it is, not hashed like tokens: the gateway needs it to
sign every delivery (HMAC), so it must be able to read it back. It is shown once, when
the endpoint is created, and never listed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from favgate.storage.indexes import WEBHOOK_DELIVERIES, WEBHOOKS

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    instance: str
    url: str
    secret: str
    created_at: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Webhook:
        return cls(
            id=doc["_id"],
            instance=doc["instance"],
            url=doc["url"],
            secret=doc["secret"],
            created_at=doc["created_at"],
        )


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """Where an endpoint's deliveries stand: still to do, and given up on."""

    pending: int = 0
    failed: int = 0
    last_error: str | None = None


class Webhooks:
    def __init__(self, database: Any) -> None:
        self._webhooks = database[WEBHOOKS]
        self._deliveries = database[WEBHOOK_DELIVERIES]

    async def add(self, instance: str, url: str, secret: str, now: datetime) -> Webhook:
        doc = {
            "_id": f"wh_{secrets.token_hex(8)}",
            "instance": instance,
            "url": url,
            "secret": secret,
            "created_at": now,
        }
        await self._webhooks.insert_one(doc)
        return Webhook.from_document(doc)

    async def get(self, id: str) -> Webhook | None:
        doc = await self._webhooks.find_one({"_id": id})
        return None if doc is None else Webhook.from_document(doc)

    async def of_instances(self, instances: list[str] | None = None) -> list[Webhook]:
        """The endpoints of ``instances`` (of all instances when None), oldest first."""
        query = {} if instances is None else {"instance": {"$in": instances}}
        cursor = self._webhooks.find(query).sort([("created_at", 1), ("_id", 1)])
        return [Webhook.from_document(doc) for doc in await cursor.to_list(None)]

    async def remove(self, id: str) -> bool:
        """Remove the endpoint and what was still to be sent to it; False if it was not."""
        result = await self._webhooks.delete_one({"_id": id})
        await self._deliveries.delete_many({"webhook": id, "status": PENDING})
        return bool(result.deleted_count)

    async def stats(self, id: str) -> WebhookStats:
        pending = await self._deliveries.count_documents({"webhook": id, "status": PENDING})
        failed = await self._deliveries.count_documents({"webhook": id, "status": FAILED})
        last = await self._deliveries.find_one(
            {"webhook": id, "status": FAILED}, {"last_error": 1}, sort=[("finished_at", -1)]
        )
        return WebhookStats(pending, failed, None if last is None else last.get("last_error"))
