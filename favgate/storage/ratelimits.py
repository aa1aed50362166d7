"""Rate-limit windows: per key, how many units were granted in each slice of the window.

One document per key (the token's SHA-256 hash, never the token), ``_id`` the key::

    {_id: <key>,
     buckets: [{t: <bucket index>, n: <units>}, ...],
     checks: [[<check id>, <units granted>], ...],   # the latest few, newest last
     expires_at: <date>}

Time is cut into buckets of ``window / BUCKETS_PER_WINDOW`` (one second for the default
minute), numbered from the epoch. A unit granted in bucket ``t`` counts as if it had
been spent at the bucket's *end*, so it stays in the window until ``end + window``: up to
one bucket longer than an exact log would keep it, never shorter. That is the price of a
document whose size depends on the window's length, not on the limit (a log of every
admission grows with the limit: with a limit of 10⁹ a busy key's log held thousands of
hits, and every check carried them all over the wire).

A check is one ``findAndModify`` whose update is an aggregation pipeline, run atomically
on the one document, upserting it on first use:

1. drop the buckets that have left the window, and give back units granted earlier and
   never spent (``give_back``: the limiter's leases, ``favgate.ratelimit.limiter``);
2. ``room`` is ``limit`` minus the units left; grant ``min(want, room)`` units if at least
   ``need`` fit, else none; add them to the bucket of ``stamp``;
3. push ``expires_at`` forward to the end of that bucket plus the window (never back),
   for the TTL index.

The reply is the document after the update: the grant and the buckets left, from which
the limiter tells clients how long to wait. Since the decision and the write are one
document update, N gateway processes together never grant more than ``limit`` units per
key in any window, and a burst at the edge of a window cannot double it (which a fixed
window would allow).

Times are the gateway's, passed in, not the server's ``$$NOW``: it keeps the storage
testable with exact instants. Replicas' clocks must then agree (NTP): a replica whose
clock is off by d seconds makes its units count for a window shifted by d.

Idle keys disappear through the TTL index on ``expires_at``. ``checks`` exists for one
reason: SecantusDB, under concurrent upserts of a key that does not exist yet, sometimes
applies the update but answers with no document (MongoDB always returns the post-image).
The check then reads the document back and finds its own id there: a second round trip,
only in that race at a key's creation. (A check whose id was pushed out by 64 later ones
in the meantime counts as granted nothing: its units are lost for a window, never given
twice.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from favgate.storage.indexes import RATE_LIMITS

BUCKETS_PER_WINDOW = 60
# How many of the latest checks a document remembers, for the race described above: far
# more than there are gateway processes, each of which has one check per key in flight.
REMEMBERED_CHECKS = 64
# A check's reply carries its own entry of ``checks`` (the last), not the others.
_REPLY = {"buckets": 1, "checks": {"$slice": -1}}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Bucket:
    """Units granted in one slice of time, which count until ``leaves``."""

    leaves: datetime
    units: int


@dataclass(frozen=True, slots=True)
class Grant:
    """A key's window right after one check."""

    granted: int
    # The units still in the window, by when they leave it, earliest first.
    buckets: tuple[Bucket, ...]
    used: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "used", sum(bucket.units for bucket in self.buckets))


@dataclass(frozen=True, slots=True)
class Charge:
    """What one check asks for: at least ``need`` units and at most ``want``, stamped at
    ``stamp``; and the ``give_back`` units of an earlier grant stamped ``given_stamp``."""

    need: int
    want: int
    stamp: datetime
    give_back: int = 0
    given_stamp: datetime | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.need <= self.want or self.give_back < 0:
            raise ValueError(f"a charge needs 0 <= need <= want and give_back >= 0; got {self}")
        if self.want == 0 and self.give_back == 0:
            raise ValueError("a charge asks for units, gives some back, or both")


class RateLimitWindows:
    def __init__(self, database: Any) -> None:
        self._windows = database[RATE_LIMITS]

    async def charge(
        self, key: str, now: datetime, window: timedelta, limit: int, charge: Charge
    ) -> Grant:
        """Grant ``key`` the units of ``charge`` that fit in ``limit`` at ``now``; atomic."""
        if limit < 1:
            raise ValueError(f"limit must be positive; got {limit}")
        check = ObjectId()
        slices = Slices(window)
        doc = await self._windows.find_one_and_update(
            {"_id": key},
            _pipeline(check, slices, now, limit, charge),
            projection=_REPLY,
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # SecantusDB's racing upsert, see the module docstring
            doc = await self._windows.find_one({"_id": key}) or {}
        granted = next((n for id_, n in reversed(doc.get("checks", [])) if id_ == check), 0)
        buckets = sorted(doc.get("buckets", []), key=lambda bucket: int(bucket["t"]))
        return Grant(
            granted=int(granted),
            buckets=tuple(
                Bucket(slices.leaves(int(b["t"])), int(b["n"])) for b in buckets if b["n"] > 0
            ),
        )


@dataclass(frozen=True, slots=True)
class Slices:
    """The buckets of a window: integer milliseconds, so that BSON holds them exactly."""

    window: timedelta
    # Derived once: a check converts every bucket of the window it reads.
    window_ms: int = field(init=False)
    bucket_ms: int = field(init=False)

    def __post_init__(self) -> None:
        window_ms = self.window // timedelta(milliseconds=1)
        object.__setattr__(self, "window_ms", window_ms)
        object.__setattr__(self, "bucket_ms", max(1, window_ms // BUCKETS_PER_WINDOW))

    def index(self, moment: datetime) -> int:
        return _ms(moment) // self.bucket_ms

    def end(self, moment: datetime) -> datetime:
        """The end of ``moment``'s bucket: when its units count as spent."""
        return self.leaves(self.index(moment)) - self.window

    def leaves(self, index: int) -> datetime:
        """When the units of bucket ``index`` leave the window: its end plus the window."""
        return EPOCH + timedelta(milliseconds=(index + 1) * self.bucket_ms + self.window_ms)


def _ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _pipeline(
    check: ObjectId, slices: Slices, now: datetime, limit: int, charge: Charge
) -> list[dict[str, Any]]:
    stamp = slices.index(charge.stamp)
    # Bucket t is still in the window while (t + 1) * bucket + window > now.
    oldest = (_ms(now) - slices.window_ms) // slices.bucket_ms
    given = -1 if charge.given_stamp is None else slices.index(charge.given_stamp)
    kept = {
        "$map": {
            "input": {
                "$filter": {
                    "input": {"$ifNull": ["$buckets", []]},
                    "cond": {"$gte": ["$$this.t", oldest]},
                }
            },
            "in": {
                "t": "$$this.t",
                "n": {
                    "$cond": [
                        {"$eq": ["$$this.t", given]},
                        {"$max": [0, {"$subtract": ["$$this.n", charge.give_back]}]},
                        "$$this.n",
                    ]
                },
            },
        }
    }
    # Mapped, not the path "$buckets.n": SecantusDB resolves no array-of-documents paths.
    room = {"$subtract": [limit, {"$sum": {"$map": {"input": "$buckets", "in": "$$this.n"}}}]}
    grant = {
        "$cond": [{"$gte": [room, charge.need]}, {"$max": [0, {"$min": [charge.want, room]}]}, 0]
    }
    added = {
        "$cond": [
            {"$eq": ["$_granted", 0]},
            "$buckets",
            {
                "$cond": [
                    {"$in": [stamp, {"$map": {"input": "$buckets", "in": "$$this.t"}}]},
                    {
                        "$map": {
                            "input": "$buckets",
                            "in": {
                                "t": "$$this.t",
                                "n": {
                                    "$cond": [
                                        {"$eq": ["$$this.t", stamp]},
                                        {"$add": ["$$this.n", "$_granted"]},
                                        "$$this.n",
                                    ]
                                },
                            },
                        }
                    },
                    {"$concatArrays": ["$buckets", [{"t": stamp, "n": "$_granted"}]]},
                ]
            },
        ]
    }
    checks = {"$concatArrays": [{"$ifNull": ["$checks", []]}, [[check, "$_granted"]]]}
    return [
        {"$set": {"buckets": kept}},
        {"$set": {"_granted": grant}},
        {
            "$set": {
                "buckets": added,
                "checks": {"$slice": [checks, -REMEMBERED_CHECKS]},
                # $max ignores a missing field, so the first check sets it.
                "expires_at": {"$max": ["$expires_at", slices.leaves(stamp)]},
            }
        },
        {"$unset": "_granted"},
    ]
