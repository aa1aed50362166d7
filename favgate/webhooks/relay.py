"""The relay: favorite changes from the change stream into the outbox, one process at a time.

Every gateway process runs a relay, and one of them holds the relay's lease (renewed
every ``LEASE / 3``); the others try to take it every ``RETRY_SECONDS`` and take over
within ``LEASE`` of the holder's death (at once after a clean stop, which releases it).
The holder follows the change stream from the stored resume token and, for each change,
enqueues one delivery per endpoint of the favorite's instance, *then* stores the change's
token (at once when it enqueued something, else at most once a second, and on a clean
stop): a process killed
between the two reads the change again on resumption and enqueues nothing new
(deliveries are keyed by the event). What its filter skips moves the stored token on as
well (``StreamPosition``, at most once a second): it resumes from its stop, not from the
last change it was given, however long ago that was.
Nothing is lost and nothing is enqueued twice, whatever dies when.

The stream is filtered by the database to the favorites of the instances that have
endpoints (``FavoriteChanges.watch_endpoints``), which the relay reads on taking the
lease: favorites of other instances cost it nothing, however many are written. Endpoints
added or removed come through the same stream, in their place among the favorites: the
relay applies each to what it knows and reopens the stream right after it, filtered
anew. So a live endpoint is sent exactly the favorites written while it exists (those
still pending when it is removed are dropped with it). After a stop, the endpoints read
on resuming are today's: one added during the stop is sent the changes it missed too.

The very first relay, with no token stored, stores where the stream stands before the
gateway serves its first request (``Relay.start``), and then reads the endpoints: one
added in between comes through the stream again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pymongo.errors import OperationFailure, PyMongoError

from favgate.errors import ChangeStreamsUnavailable, FavgateError
from favgate.storage import EndpointChange, FavoriteChange, ResumeToken, Storage
from favgate.storage.changes import ChangeFeed
from favgate.webhooks import payload

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=10)
RETRY_SECONDS = 1.0
SAVE_EVERY_SECONDS = 1.0
# The stored token is older than the oldest change the server keeps (the relay was
# stopped too long): the changes in between are gone; the relay starts again from now.
_HISTORY_LOST = {280, 286}


class LeaseLost(Exception):
    """Another process has taken the relay's lease."""


class Relay:
    def __init__(self, storage: Storage, owner: str, enqueued: Callable[[], None]) -> None:
        self._storage = storage
        self._outbox = storage.outbox
        self._owner = owner
        self._enqueued = enqueued  # wakes this process's delivery workers
        self._halted = False
        # The endpoints' ids by instance, as the open stream was filtered on.
        self._endpoints: dict[str, list[str]] = {}
        # The position of the last change relayed, while it is not stored yet.
        self._unsaved: ResumeToken | None = None

    async def start(self) -> ChangeFeed | None:
        """Take the lease if it is free and open the stream: the feed, or None if another
        process relays. Done before serving, so that no write precedes the first stream."""
        held, token = await self._outbox.lease_relay(self._owner, _now(), LEASE)
        if not held:
            return None
        return await self._open(token)

    async def run(self, feed: ChangeFeed | None) -> None:
        """Relay whenever this process holds the lease, until cancelled or halted."""
        while not self._halted:
            try:
                if feed is None:
                    feed = await self.start()
                if feed is not None:
                    await self._relay_while_held(feed)
            except ChangeStreamsUnavailable:
                logger.error("webhooks need change streams (a replica set): none will be sent")
                return
            except (LeaseLost, PyMongoError, FavgateError) as exc:
                if self._halted:  # the app is stopping: its database client is closing
                    return
                logger.warning("webhook relay interrupted, resuming: %s", exc)
            except Exception:  # a bug must not end the relay for good
                logger.exception("webhook relay failed, resuming")
            finally:  # cancelled included: the stream's cursor is not left open
                if feed is not None:
                    await feed.close()
                    feed = None
            await asyncio.sleep(RETRY_SECONDS)

    def halt(self) -> None:
        """End the loop at its next turn, whatever interrupts it: a relay left running
        after its app has stopped would retry for ever with a closed client."""
        self._halted = True

    async def stop(self) -> None:
        """Store how far the relay got, and hand the lease over at once (the loop is
        cancelled by the caller): the next relay resumes from this stop, not from the
        last position stored, up to a second earlier."""
        with contextlib.suppress(PyMongoError, LeaseLost):
            if self._unsaved is not None:
                await self._save(self._unsaved)
        with contextlib.suppress(PyMongoError):
            await self._outbox.release_relay(self._owner, _now())

    async def _open(self, token: ResumeToken | None) -> ChangeFeed:
        """The stream from ``token`` (from now when None), filtered on the endpoints read
        after that point: those written in between come through it again, so none is
        missed, as one written between the reading and a stream opened now would be."""
        self._unsaved = None  # what a former hold of the lease saw is not this one's
        if token is None:
            token = await self._store_present()
        self._endpoints = await self._endpoints_by_instance()
        try:
            return await self._storage.changes.watch_endpoints(self._endpoints, token)
        except OperationFailure as exc:
            if exc.code not in _HISTORY_LOST:
                raise
        logger.error("webhook relay resumes from now: the changes since its stop are lost")
        return await self._open(None)

    async def _store_present(self) -> ResumeToken | None:
        """Where the stream stands now, stored as the relay's position."""
        feed = await self._storage.changes.watch_endpoints({}, None)
        position = feed.position
        await feed.close()
        if position is not None:
            await self._save(position)
        return position

    async def _relay_while_held(self, feed: ChangeFeed) -> None:
        renewal = asyncio.create_task(self._renew())
        relaying = asyncio.create_task(self._relay(feed))
        try:
            done, _ = await asyncio.wait({renewal, relaying}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # LeaseLost, or the stream's error
        finally:
            for task in (renewal, relaying):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _relay(self, first: ChangeFeed) -> None:
        """Relay ``first``, then each feed reopened when the endpoints change."""
        feed = first
        try:
            while (token := await self._relay_feed(feed)) is not None:
                await feed.close()
                feed = await self._storage.changes.watch_endpoints(self._endpoints, token)
        finally:  # the first is the caller's to close
            if feed is not first:
                await feed.close()

    async def _relay_feed(self, feed: ChangeFeed) -> ResumeToken | None:
        """Enqueue the feed's changes until the endpoints change: where to go on from
        then, with a new filter (None: the feed has ended)."""
        saved_at = time.monotonic()
        async with contextlib.aclosing(feed.changes()) as changes:
            async for change in changes:
                if isinstance(change, EndpointChange):
                    self._apply(change)
                    await self._save(change.resume_token)
                    return change.resume_token
                enqueued = isinstance(change, FavoriteChange) and await self._enqueue(change)
                # Re-reading changes costs nothing but time (enqueuing is idempotent), so
                # a change no endpoint wanted, or the changes the filter skipped
                # (``StreamPosition``), move the stored token at most once a second.
                self._unsaved = change.resume_token
                if enqueued or time.monotonic() - saved_at >= SAVE_EVERY_SECONDS:
                    await self._save(change.resume_token)
                    saved_at = time.monotonic()
        return None

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            held, _ = await self._outbox.lease_relay(self._owner, _now(), LEASE)
            if not held:
                raise LeaseLost()

    async def _save(self, token: ResumeToken) -> None:
        if not await self._outbox.save_position(self._owner, token):
            raise LeaseLost()
        if token == self._unsaved:
            self._unsaved = None

    def _apply(self, change: EndpointChange) -> None:
        for endpoints in self._endpoints.values():
            if change.endpoint in endpoints:
                endpoints.remove(change.endpoint)
        if change.instance is not None:
            self._endpoints.setdefault(change.instance, []).append(change.endpoint)
        self._endpoints = {instance: ids for instance, ids in self._endpoints.items() if ids}

    async def _endpoints_by_instance(self) -> dict[str, list[str]]:
        by_instance: dict[str, list[str]] = {}
        for webhook in await self._storage.webhooks.of_instances():
            by_instance.setdefault(webhook.instance, []).append(webhook.id)
        return by_instance

    async def _enqueue(self, change: FavoriteChange) -> bool:
        """Enqueue the change for its instance's endpoints; False if it has none."""
        favorite = change.favorite
        endpoints = self._endpoints.get(favorite.instance)
        if not endpoints:
            return False
        message = None
        if (message_id := favorite.target.message_id) is not None:
            found = await self._storage.messages.get_many(favorite.instance, [message_id])
            message = found.get(message_id)
        body = payload.body(favorite, message)
        event = payload.event_id(change.resume_token)
        await self._outbox.enqueue(event, endpoints, body, _now())
        self._enqueued()
        return True


def _now() -> datetime:
    return datetime.now(UTC)
