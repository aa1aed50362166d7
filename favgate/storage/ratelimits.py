"""Rate-limit windows: per key, the admissions of the last window (a sliding window log).

One document per key (the token's SHA-256 hash, never the token), ``_id`` the key::

    {_id: <key>, hits: [{at: <date>, id: <ObjectId>}, ...], expires_at: <date>}

A check is one ``findAndModify`` whose update is an aggregation pipeline, run atomically
on the one document, upserting it on first use:

1. drop the hits older than ``now - window``;
2. if the hits left plus ``cost`` fit in ``limit``, append ``cost`` hits stamped ``now``
   and this check's id; otherwise change nothing;
3. push ``expires_at`` forward to ``now + window`` (never back), for the TTL index.

The post-image comes back in the same reply: the check was admitted exactly when its id
is among the hits. Since the decision and the write happen in one document update, N
gateway processes together never admit more than ``limit`` hits per key in any window of
``window`` length, and a burst at the edge of a window cannot double it (which a fixed
window would allow).

Time is the gateway's, passed in, not the server's ``$$NOW``: it keeps the storage
testable with exact instants. Replicas' clocks must then agree (NTP): a replica whose
clock is off by d seconds makes its hits count for a window shifted by d, which can let
a key's traffic exceed ``limit`` within a real-time window by what the skew lets expire
early. Dates are BSON dates, stored to the millisecond.

Idle keys disappear through the TTL index on ``expires_at``: a document whose last hit
left the window is of no use, and TTL deletion is never early for a live hit because
``expires_at`` only moves forward.

The id in each hit exists for one reason: SecantusDB, under concurrent upserts of a key
that does not exist yet, sometimes applies the update but answers with no document
(MongoDB always returns the post-image). The check then reads the document back and finds
its own id there or not: a second round trip, only in that race at a key's creation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from favgate.storage.indexes import RATE_LIMITS


@dataclass(frozen=True, slots=True)
class Window:
    """A key's window right after one check."""

    admitted: bool
    # When the hits still in the window were admitted, oldest first; a check of cost n
    # adds n hits.
    hits: tuple[datetime, ...]


class RateLimits:
    def __init__(self, database: Any) -> None:
        self._windows = database[RATE_LIMITS]

    async def hit(
        self, key: str, now: datetime, window: timedelta, limit: int, cost: int = 1
    ) -> Window:
        """Admit ``cost`` hits for ``key`` at ``now`` if they fit in ``limit``; atomic."""
        if cost < 1 or limit < 1:
            raise ValueError(f"cost and limit must be positive; got {cost} and {limit}")
        check = ObjectId()
        doc = await self._windows.find_one_and_update(
            {"_id": key},
            _pipeline(check, now, window, limit, cost),
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # SecantusDB's racing upsert, see the module docstring
            doc = await self._windows.find_one({"_id": key}) or {}
        hits = doc.get("hits", [])
        return Window(
            admitted=any(hit["id"] == check for hit in hits),
            hits=tuple(sorted(hit["at"] for hit in hits)),
        )


def _pipeline(
    check: ObjectId, now: datetime, window: timedelta, limit: int, cost: int
) -> list[dict[str, Any]]:
    recent = {
        "$filter": {
            "input": {"$ifNull": ["$hits", []]},
            "as": "hit",
            "cond": {"$gt": ["$$hit.at", now - window]},
        }
    }
    fits = {"$lte": [{"$add": [{"$size": "$hits"}, cost]}, limit]}
    admitted = {"$concatArrays": ["$hits", [{"at": now, "id": check}] * cost]}
    return [
        {"$set": {"hits": recent}},
        {
            "$set": {
                "hits": {"$cond": [fits, admitted, "$hits"]},
                # $max ignores a missing field, so the first check sets it.
                "expires_at": {"$max": ["$expires_at", now + window]},
            }
        },
    ]
