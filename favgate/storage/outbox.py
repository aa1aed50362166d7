"""The webhook outbox: deliveries still to make, and where the relay stands in the stream.

A delivery is one event for one endpoint, ``_id`` ``<event id>:<endpoint id>``, so that
enqueuing an event again (the relay re-reading changes after a crash) adds nothing::

    {_id, event: <event id>, webhook: <endpoint id>, body: <bytes>, status: "pending",
     attempts: <n>, next_attempt_at: <date>, owner: <worker>, created_at: <date>,
     last_error: <str>, finished_at: <date>, expires_at: <date>}

``next_attempt_at`` is also the lease: claiming a delivery pushes it ``lease`` ahead, so
no other worker claims it while one is sending it, and a worker that dies mid-send leaves
it to be claimed again once the lease has run out. A worker records the outcome only if
the delivery is still its own claim (``owner`` and ``attempts`` unchanged): one that
outlived its lease cannot overwrite the outcome of the worker that took over.

The relay's position is one document, ``_id`` ``favorites``: the resume token of the
last change it has enqueued, and the lease of the one gateway process relaying
(``owner``, ``leased_until``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import Binary
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from favgate.storage.changes import ResumeToken
from favgate.storage.indexes import WEBHOOK_DELIVERIES, WEBHOOK_RELAY
from favgate.storage.webhooks import DELIVERED, FAILED, PENDING

DUPLICATE_KEY = 11000
# Finished deliveries stay this long (``favgate webhook list`` counts the failed ones).
KEEP_FINISHED = timedelta(days=7)
_RELAY = "favorites"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery a worker has claimed: its ``attempts`` include the one it is making."""

    id: str
    event: str
    webhook: str
    body: bytes
    attempts: int
    created_at: datetime
    owner: str


class Outbox:
    def __init__(self, database: Any) -> None:
        self._deliveries = database[WEBHOOK_DELIVERIES]
        self._relay = database[WEBHOOK_RELAY]

    async def enqueue(self, event: str, webhooks: list[str], body: bytes, now: datetime) -> None:
        """One pending delivery of ``event`` per endpoint; those already there stay as
        they are (the event was enqueued before)."""
        docs = [_delivery(event, webhook, body, now) for webhook in webhooks]
        if not docs:
            return
        try:
            await self._deliveries.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            details = exc.details
            if details.get("writeConcernErrors") or any(
                error["code"] != DUPLICATE_KEY for error in details["writeErrors"]
            ):
                raise

    async def claim(self, owner: str, now: datetime, lease: timedelta) -> Delivery | None:
        """The pending delivery due soonest, leased to ``owner`` until ``now + lease``."""
        doc = await self._deliveries.find_one_and_update(
            {"status": PENDING, "next_attempt_at": {"$lte": now}},
            {"$set": {"owner": owner, "next_attempt_at": now + lease}, "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        return Delivery(
            id=doc["_id"],
            event=doc["event"],
            webhook=doc["webhook"],
            body=bytes(doc["body"]),
            attempts=doc["attempts"],
            created_at=doc["created_at"],
            owner=owner,
        )

    async def delivered(self, delivery: Delivery, now: datetime) -> None:
        await self._finish(delivery, {"status": DELIVERED, **_finished(now)})

    async def failed(self, delivery: Delivery, now: datetime, error: str) -> None:
        """Given up on: recorded as failed, with the last attempt's error."""
        await self._finish(delivery, {"status": FAILED, "last_error": error, **_finished(now)})

    async def retry(self, delivery: Delivery, at: datetime, error: str) -> None:
        await self._finish(delivery, {"next_attempt_at": at, "last_error": error})

    async def drop(self, delivery: Delivery) -> None:
        """Forget a delivery whose endpoint was removed."""
        await self._deliveries.delete_one(_claimed(delivery))

    async def backlog(self) -> tuple[int, datetime | None]:
        """How many deliveries are pending, and when the oldest was enqueued."""
        count = await self._deliveries.count_documents({"status": PENDING})
        oldest = await self._deliveries.find_one(
            {"status": PENDING}, {"created_at": 1}, sort=[("created_at", 1)]
        )
        return int(count), None if oldest is None else oldest["created_at"]

    async def _finish(self, delivery: Delivery, fields: dict[str, Any]) -> None:
        await self._deliveries.update_one(_claimed(delivery), {"$set": fields})

    # --- the relay's position and lease ----------------------------------------------

    async def lease_relay(
        self, owner: str, now: datetime, lease: timedelta
    ) -> tuple[bool, ResumeToken | None]:
        """Take (or keep) the relay's lease: (True, the stored resume token) if ``owner``
        holds it now, (False, None) while another process does."""
        query = {"_id": _RELAY, "$or": [{"leased_until": {"$lte": now}}, {"owner": owner}]}
        update = {"$set": {"owner": owner, "leased_until": now + lease}}
        try:
            doc = await self._relay.find_one_and_update(
                query, update, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:  # the document exists and another process holds it
            return False, None
        if doc is None:  # SecantusDB may answer an upsert with no document: read it back
            doc = await self._relay.find_one({"_id": _RELAY})
            if doc is None or doc.get("owner") != owner:
                return False, None
        return True, doc.get("token")

    async def save_position(self, owner: str, token: ResumeToken) -> bool:
        """Store where the relay stands; False when ``owner`` no longer holds the lease."""
        result = await self._relay.update_one(
            {"_id": _RELAY, "owner": owner}, {"$set": {"token": dict(token)}}
        )
        return bool(result.matched_count)

    async def release_relay(self, owner: str, now: datetime) -> None:
        """Let another process take the relay at once, rather than when the lease ends."""
        await self._relay.update_one(
            {"_id": _RELAY, "owner": owner}, {"$set": {"leased_until": now}}
        )


def _delivery(event: str, webhook: str, body: bytes, now: datetime) -> dict[str, Any]:
    return {
        "_id": f"{event}:{webhook}",
        "event": event,
        "webhook": webhook,
        "body": Binary(body),
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _claimed(delivery: Delivery) -> dict[str, Any]:
    return {"_id": delivery.id, "owner": delivery.owner, "attempts": delivery.attempts}


def _finished(now: datetime) -> dict[str, Any]:
    return {"finished_at": now, "expires_at": now + KEEP_FINISHED}
