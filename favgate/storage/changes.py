"""Live changes of favorites, from a MongoDB change stream.

A change stream reports every write to ``favorites``, whichever gateway process made it,
so a subscriber on one replica hears of a favorite set through another; each change
carries the record as it stands (``updateLookup``).

One stream per ``Storage`` (so per gateway process) serves all its subscribers:
``FavoriteChanges`` opens it for the first, hands each change to the subscribers of its
instance (and type), and closes it when the last one leaves. It hands a change to
``DELIVERY_BATCH`` subscribers at a time, letting the event loop run between batches:
each subscriber it wakes then executes and sends the change, and thousands woken at once
would hold the loop, and every request waiting on it, until all of them had. Subscribers
of one ``group`` (the caller's: one WebSocket connection's) are handed a change one after
the other, so that they run in the same turn of the loop, where their messages leave the
gateway in one write (``favgate.wsprotocol``). A stream per subscriber
would hold a database cursor each, and while it waits for changes, a pooled connection
(PyMongo) or one of motor's few worker threads: a few dozen subscribers would starve the
requests.

Every operation runs under the client's deadline (``favgate.storage.driver``), a stream
too: each wait for the next batch (one ``getMore``, which the server holds open for at
most ``MAX_AWAIT_TIME_MS`` when there is nothing new) is one operation with a deadline of
its own, so a stalled database is noticed within the deadline while a quiet stream lives
on. (PyMongo's ``next()`` would put the whole wait for a change under one deadline and
end a quiet stream every ``timeoutMS``: the feed calls ``try_next()`` instead.)

The driver resumes a stream once by itself when its cursor drops (a killed cursor, a
failover). When that fails too, ``ChangeFeed`` reopens it where it stood (a resume
token), so no change is lost across the gap, and gives up with ``ServiceUnavailable``
once the database has stayed out of reach for ``RESUME_ATTEMPTS`` tries. A server
without change streams (a standalone mongod) refuses at once:
``ChangeStreamsUnavailable``.

The webhook relay follows a stream of its own (``FavoriteChanges.watch_endpoints``): the
database's, filtered by the server to the favorites of the instances that have endpoints,
with every change of the endpoints themselves in its place in the order of writes
(``EndpointChange``), so that the relay knows when to ask for a new filter. A
favorite of an instance without endpoints costs the relay nothing: no batch, no lookup.
What the filter skips still moves the stream on: after a batch with nothing for the
filter, the feed reports where the server has read up to (``StreamPosition``), so that
the relay stores a position past the skipped changes, not the last change it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import weakref
from collections.abc import AsyncGenerator, Collection, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pymongo.errors import ConnectionFailure, CursorNotFound, OperationFailure, PyMongoError

from favgate.errors import ChangeStreamsUnavailable, ServiceUnavailable
from favgate.storage.driver import deadline_ms
from favgate.storage.indexes import FAVORITES, WEBHOOKS
from favgate.storage.records import Favorite, FavoriteType

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# An opaque position in the stream, as the server hands it out.
ResumeToken = Mapping[str, Any]

# "The $changeStream stage is only supported on replica sets".
CHANGE_STREAMS_UNSUPPORTED = 40573
# Each attempt waits up to the deadline (FAVGATE_DATABASE_TIMEOUT_MS), so the default
# settings ride out a database outage of about 20 s before subscribers are told.
RESUME_ATTEMPTS = 3
RESUME_DELAY_SECONDS = 0.1
# How long the server holds a getMore open when there is nothing new. It bounds how long
# closing a stream waits for the request in flight, whichever driver runs it. Half the
# deadline at most, so that a quiet server's empty answer comes well before it.
MAX_AWAIT_TIME_MS = 500
# Changes a subscriber may leave unread before it is dropped: a client that stops reading
# must not make the gateway hold every change for it.
MAX_PENDING = 1000
# The least time between two batches of the webhook relay's stream, when the first came
# back empty. A server may end a filtered stream's wait as soon as anything is written,
# with nothing for the filter in its batch (SecantusDB does): the relay would then ask
# once per favorite written anywhere. Its deliveries can wait this long: as long as a
# quiet stream's batch takes anyway.
ENDPOINTS_POLL_SECONDS = MAX_AWAIT_TIME_MS / 1000
# Subscribers handed a change before the loop runs what is waiting (module docstring).
DELIVERY_BATCH = 50
# Records are never deleted; a change without its document is of no interest.
_WRITES: Final = {"$in": ["insert", "update", "replace"]}
_PIPELINE: Final = ({"$match": {"operationType": _WRITES}},)


@dataclass(frozen=True, slots=True)
class FavoriteChange:
    """A favorite as it stands after a write, and where the stream stood after it."""

    favorite: Favorite
    resume_token: ResumeToken


@dataclass(frozen=True, slots=True)
class EndpointChange:
    """A webhook endpoint written (``instance``: its instance) or removed (``instance``
    None), in ``watch_endpoints``'s stream: the instances that have endpoints may no
    longer be those the stream is filtered on."""

    endpoint: str
    instance: str | None
    resume_token: ResumeToken


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where ``watch_endpoints``'s stream stands after a batch with nothing for its filter:
    past every change the server skipped, and past every change given before."""

    resume_token: ResumeToken


Change = FavoriteChange | EndpointChange | StreamPosition


class FavoriteChanges:
    """The changes of favorites, for the subscribers of one gateway process."""

    def __init__(self, database: Any) -> None:
        self._database = database
        self._favorites = database[FAVORITES]
        # Weak: a subscriber dropped before it was ever read cannot linger here.
        self._subscribers: weakref.WeakSet[Subscriber] = weakref.WeakSet()
        self._pump: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def watch(self, resume_after: ResumeToken | None = None) -> ChangeFeed:
        """A stream of every favorite change of its own, opened now, from ``resume_after``.

        Opening now makes the errors of the first attempt the caller's, before it waits
        for any change: ``ChangeStreamsUnavailable``, or the driver's own.
        """
        feed = ChangeFeed(self._favorites, self._database, list(_PIPELINE), resume_after)
        await feed.open()
        return feed

    async def watch_endpoints(
        self, instances: Collection[str], resume_after: ResumeToken | None = None
    ) -> ChangeFeed:
        """The changes of ``instances``' favorites and of every webhook endpoint, opened
        now, from ``resume_after`` (see the module docstring). The filter is the server's:
        when the endpoints change (``EndpointChange``), the caller opens a new feed from
        that change's token with the instances that have endpoints then, and misses
        nothing in between."""
        favorites = {
            "ns.coll": FAVORITES,
            "operationType": _WRITES,
            "fullDocument.instance": {"$in": sorted(instances)},
        }
        # An endpoint's own changes only (a dropped collection leaves ids behind that the
        # senders find gone, and drop their deliveries).
        endpoints = {"ns.coll": WEBHOOKS, "operationType": {"$in": [*_WRITES["$in"], "delete"]}}
        pipeline = [{"$match": {"$or": [endpoints, favorites]}}]
        feed = ChangeFeed(
            self._database,
            self._database,
            pipeline,
            resume_after,
            ENDPOINTS_POLL_SECONDS,
            positions=True,
        )
        await feed.open()
        return feed

    async def subscribe(
        self, instance: str, type: FavoriteType | None = None, *, group: object = None
    ) -> Subscriber:
        """The changes of ``instance``'s favorites (of ``type``) from now on, handed over
        next to those of the other subscribers of ``group`` (module docstring).

        The shared stream is open when this returns: a change made from then on reaches
        the subscriber. Its errors on opening are the caller's.
        """
        async with self._lock:
            if self._pump is None:
                self._pump = asyncio.create_task(self._deliver(await self.watch()))
            subscriber = Subscriber(self, instance, type, id(group))
            self._subscribers.add(subscriber)
        return subscriber

    async def close(self) -> None:
        """Stop the stream; every subscriber's iteration ends."""
        async with self._lock:
            await self._stop()

    async def _leave(self, subscriber: Subscriber) -> None:
        async with self._lock:
            self._subscribers.discard(subscriber)
            if not self._subscribers:
                await self._stop()

    async def _stop(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    async def _deliver(self, feed: ChangeFeed) -> None:
        error: Exception | None = None
        try:
            # Closed on leaving, wherever the pump is stopped: between two batches the feed
            # is not awaiting, and only closing it closes its stream.
            async with contextlib.aclosing(feed.changes()) as changes:
                async for change in changes:
                    if isinstance(change, FavoriteChange):  # the only kind this feed has
                        await self._offer(change.favorite)
        except Exception as exc:  # the stream is lost: so are its subscriptions
            error = exc
        finally:
            if self._pump is asyncio.current_task():
                self._pump = None
            for subscriber in list(self._subscribers):
                subscriber.end(error)
            self._subscribers.clear()

    async def _offer(self, favorite: Favorite) -> None:
        in_groups = sorted(self._subscribers, key=_group)
        for count, subscriber in enumerate(in_groups, 1):
            if not subscriber.offer(favorite):
                self._subscribers.discard(subscriber)
            if count % DELIVERY_BATCH == 0:
                await asyncio.sleep(0)  # the woken subscribers run, and the requests


def _group(subscriber: Subscriber) -> int:
    return subscriber.group


class Subscriber:
    """The changes one subscription receives: an async iterator of ``Favorite``."""

    def __init__(
        self, changes: FavoriteChanges, instance: str, type: FavoriteType | None, group: int
    ) -> None:
        self._changes = changes
        self._instance = instance
        self._type = type
        # Only orders the handing over: an id reused by another group merely mixes the two.
        self.group = group
        # Unbounded so that ``end`` always fits; ``offer`` keeps it to MAX_PENDING.
        self._queue: asyncio.Queue[Favorite | Exception | None] = asyncio.Queue()

    def offer(self, favorite: Favorite) -> bool:
        """Queue ``favorite`` if it is of this subscription; False once it has ended."""
        if favorite.instance != self._instance:
            return True
        if self._type is not None and favorite.target.type is not self._type:
            return True
        if self._queue.qsize() >= MAX_PENDING:
            self.end(ServiceUnavailable("Too many changes left unread: subscription ended"))
            return False
        self._queue.put_nowait(favorite)
        return True

    def end(self, error: Exception | None = None) -> None:
        """Finish the iteration after what is queued, with ``error`` if one is given."""
        self._queue.put_nowait(error)

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> Favorite:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # ended: stay ended
            raise StopAsyncIteration
        if isinstance(item, Exception):
            self._queue.put_nowait(None)
            raise item
        return item

    async def aclose(self) -> None:
        await self._changes._leave(self)


class ChangeFeed:
    """One change stream (of a collection or a database), reopened where it stood
    whenever it drops."""

    def __init__(
        self,
        source: Any,
        database: Any,
        pipeline: list[dict[str, Any]],
        resume_after: ResumeToken | None,
        poll_every: float = 0.0,
        positions: bool = False,
    ) -> None:
        self._source = source
        self._database = database
        self._poll = poll_every
        self._positions = positions  # report StreamPosition after empty batches
        self._pipeline = pipeline
        # Where the stream would go on from: past the last change delivered, or further,
        # at the last point the server reported having read up to.
        self.resume_token = resume_after
        self._stream: Any = None
        self._closed = False

    async def open(self) -> None:
        try:
            self._stream = await _open_stream(
                self._source, self._database, self._pipeline, self.resume_token
            )
        except OperationFailure as exc:
            if exc.code == CHANGE_STREAMS_UNSUPPORTED:
                raise ChangeStreamsUnavailable() from exc
            raise

    @property
    def position(self) -> ResumeToken | None:
        """Where the open stream stands, before any change has been read from it.

        Past the last change delivered, or further: only safe to persist as the point
        to resume from while no change delivered is still being handled.
        """
        stream_token = None if self._stream is None else self._stream.resume_token
        return stream_token or self.resume_token

    async def changes(self) -> AsyncGenerator[Change, None]:
        """Every change, in order, until the feed is closed or the database stays away."""
        failures = 0
        try:
            while True:
                try:
                    if self._stream is None:
                        await self.open()
                        failures = 0
                    while self._stream.alive:
                        change = await _next_change(self._stream, self._poll)
                        if change is None:
                            if (moved := self._moved()) is not None:
                                yield StreamPosition(moved)
                            continue
                        self.resume_token = change["_id"]
                        if change["ns"].get("coll") == WEBHOOKS:
                            yield _endpoint_change(change)
                        elif (document := change.get("fullDocument")) is not None:
                            yield FavoriteChange(Favorite.from_document(document), change["_id"])
                    if self._closed:
                        return
                    # Ended without an error: SecantusDB answers so for a killed cursor.
                    cause: PyMongoError = CursorNotFound("the server ended the change stream")
                except PyMongoError as exc:
                    if not _resumable(exc):
                        raise
                    cause = exc
                failures += 1
                if failures > RESUME_ATTEMPTS:
                    logger.error("change stream lost, the database stayed away: %s", cause)
                    raise ServiceUnavailable() from cause
                logger.warning("change stream dropped, resuming (try %d): %s", failures, cause)
                await self._drop()
                await asyncio.sleep(RESUME_DELAY_SECONDS * 2 ** (failures - 1))
        finally:
            await self.close()

    async def close(self) -> None:
        self._closed = True
        await self._drop()

    def _moved(self) -> ResumeToken | None:
        """The driver's token after an empty batch, if it reports positions and the token
        has moved past ``resume_token`` (the server read changes the filter skipped)."""
        token: ResumeToken | None = self._stream.resume_token if self._positions else None
        if token is None or token == self.resume_token:
            return None
        self.resume_token = token
        return token

    async def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        # The driver's token may be past the last change delivered (the server reports
        # how far it has read): resuming there spares rereading history, or outliving it.
        self.resume_token = stream.resume_token or self.resume_token
        # A stream that failed may fail to close: it is gone either way.
        with contextlib.suppress(PyMongoError):
            await stream.close()


def _endpoint_change(change: Mapping[str, Any]) -> EndpointChange:
    document = change.get("fullDocument")  # None once removed
    instance = None if document is None else document["instance"]
    return EndpointChange(change["documentKey"]["_id"], instance, change["_id"])


async def _next_change(stream: Any, poll_every: float) -> Mapping[str, Any] | None:
    """The stream's next change, or None when its batch came back empty; each batch under
    a deadline of its own (see the module's docstring), and an empty one not followed by
    the next for ``poll_every`` seconds."""
    loop = asyncio.get_running_loop()
    asked = loop.time()
    change: Mapping[str, Any] | None = await _uncancelled(stream.try_next())
    if change is None:
        await asyncio.sleep(asked + poll_every - loop.time())  # at once when past it
    return change


async def _uncancelled(call: Coroutine[Any, Any, _T]) -> _T:
    """``call``'s result; a cancellation waits for it to end first (at most the server's
    ``MAX_AWAIT_TIME_MS``, or the deadline). PyMongo's asyncio client, cancelled in the
    middle of a ``getMore``, at times never returns, so the stream could not be closed;
    motor's thread goes on with it anyway."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller sees
        raise


async def _open_stream(
    source: Any, database: Any, pipeline: list[dict[str, Any]], token: Any
) -> Any:
    """The driver's change stream of ``source`` (a collection of ``database``, or
    ``database`` itself), its first ``aggregate`` already run.

    PyMongo's ``watch()`` is a coroutine that runs it; motor's returns a stream that runs
    it lazily, on entering it (``async with``) or on the first change.
    """
    stream = source.watch(
        pipeline,
        full_document="updateLookup",
        resume_after=token,
        max_await_time_ms=_max_await_ms(database),
    )
    if inspect.isawaitable(stream):
        return await stream
    return await stream.__aenter__()


def _max_await_ms(database: Any) -> int:
    deadline = deadline_ms(database)
    return MAX_AWAIT_TIME_MS if deadline is None else max(1, min(MAX_AWAIT_TIME_MS, deadline // 2))


def _resumable(exc: PyMongoError) -> bool:
    """Errors after which a stream can go on from its resume token: the drivers' rule, and
    a deadline blown by a stalled or slow database (the drivers keep such a stream open)."""
    if isinstance(exc, ConnectionFailure | CursorNotFound) or exc.timeout:
        return True
    return isinstance(exc, OperationFailure) and exc.has_error_label("ResumableChangeStreamError")
