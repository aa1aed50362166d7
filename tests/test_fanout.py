"""Live fan-out: a change executed once per subscription document, and its ``next``
payload encoded once (``favgate.schema.shared_events.SharedEvents``,
``favgate.websocket.SharedPayloads``), the extensions asked only when they answer
(``favgate.schema.runner``, ``PublicErrors``), all proven equal to the plain path.

The schema is run without HTTP, as the WebSocket runs it, against the real database: the
same subscriptions on favgate's schema and on one that takes Strawberry's and
graphql-core's own path for each subscription, the same changes, the same answers.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import strawberry
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, Tenants
from strawberry.extensions import MaskErrors, SchemaExtension

from favgate.config import Settings
from favgate.metrics import REGISTRY
from favgate.resolvers.favorites import now
from favgate.schema import Schema, build_context, build_schema
from favgate.schema.errors import PublicErrors
from favgate.schema.limits import execution_context_class
from favgate.schema.shared_events import SHARED_EVENTS
from favgate.storage import FavoriteTarget, FavoriteType, Storage, Subscriber
from favgate.storage.changes import DELIVERY_BATCH
from favgate.websocket import SharedPayloads

# Change streams: the driver matters.
pytestmark = pytest.mark.both_drivers

TIMEOUT = 10.0

FULL = """
subscription Changes($instance: String!, $type: FavoriteType) {
  favoriteChanged(instance: $instance, type: $type) {
    id type chatJid messageId favorite favoritedAt updatedAt message { id text fromMe }
  }
}
"""
FRAGMENTS = """
subscription { favoriteChanged(instance: "main") { ...F other: chatJid __typename } }
fragment F on Favorite { id favorite message { fromMe } }
"""
# One document, two variables: the result depends on them, so it is not shared across.
DIRECTIVES = """
subscription S($withMessage: Boolean!) {
  favoriteChanged(instance: "main") { chatJid message @include(if: $withMessage) { text } }
}
"""
SUBSCRIPTIONS: list[tuple[str, dict[str, Any]]] = [
    (FULL, {"instance": "main"}),
    (FULL, {"instance": "main", "type": "MESSAGE"}),
    (FRAGMENTS, {}),
    (DIRECTIVES, {"withMessage": True}),
    (DIRECTIVES, {"withMessage": False}),
]
EACH = 3  # subscriptions per document and variables
# Changes every subscription hears of (the type filter's own effect is test_subscriptions').
CHANGES = [
    (FavoriteTarget(FavoriteType.MESSAGE, CHAT_JID, MESSAGE_ID), True),
    (FavoriteTarget(FavoriteType.MESSAGE, GROUP_JID, "GROUPMSG1"), True),
    (FavoriteTarget(FavoriteType.MESSAGE, CHAT_JID, MESSAGE_ID), False),
]


def open_subscriptions() -> float:
    return REGISTRY.get_sample_value("favgate_graphql_subscriptions_open") or 0.0


class Answering(SchemaExtension):
    """An extension with results and a stream hook: both must still be asked."""

    def get_results(self) -> dict[str, Any]:
        return {"asked": True}

    def on_stream_result(self, result: Any) -> Any:
        result.extensions = {**(result.extensions or {}), "hooked": True}
        yield


class PlainPublicErrors(PublicErrors):
    _process_result = MaskErrors._process_result  # Strawberry's own test of a result


def shared_schema(settings: Settings) -> Schema:
    """The schema as the WebSocket gets it, with one more extension that answers."""
    schema = build_schema(settings)
    schema.extensions = [*schema.extensions, Answering]
    return schema


def plain_schema(settings: Settings) -> Schema:
    """The same, each event executed for each subscription, and every extension asked for
    each result as Strawberry asks them."""

    class Unshared(execution_context_class(settings)):  # type: ignore[misc,valid-type]
        share_events = False

    schema = shared_schema(settings)
    schema.execution_context_class = Unshared
    assert PublicErrors in schema.extensions
    schema.extensions = [PlainPublicErrors if e is PublicErrors else e for e in schema.extensions]
    runner = strawberry.Schema.create_extensions_runner
    schema.create_extensions_runner = runner.__get__(schema)  # type: ignore[method-assign]
    return schema


class Streams:
    """``EACH`` subscriptions of every one of ``SUBSCRIPTIONS`` on one schema."""

    def __init__(self, schema: Schema, storage: Storage, token: str) -> None:
        self.schema, self.storage, self.token = schema, storage, token
        self.streams: list[Any] = []
        self.pending: list[asyncio.Task[Any]] = []

    async def open(self) -> None:
        for query, variables in SUBSCRIPTIONS:
            for _ in range(EACH):
                context = build_context(self.storage, self.token, cache_messages=False)
                stream = await self.schema.subscribe(query, variables, context_value=context)
                self.streams.append(stream)
        before = open_subscriptions()
        self.listen()
        async with asyncio.timeout(TIMEOUT):
            while open_subscriptions() < before + len(self.streams):
                await asyncio.sleep(0.01)

    def listen(self) -> None:
        self.pending = [asyncio.ensure_future(anext(stream)) for stream in self.streams]

    async def results(self) -> list[Any]:
        """Each subscription's result of the next change it hears of, in order."""
        async with asyncio.timeout(TIMEOUT):
            results = await asyncio.gather(*self.pending)
        self.listen()
        return results

    async def close(self) -> None:
        for task in self.pending:
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)
        for stream in self.streams:
            await stream.aclose()


@pytest.fixture
async def both(
    settings: Settings, storage: Storage, tenants: Tenants
) -> AsyncIterator[tuple[Streams, Streams]]:
    shared = Streams(shared_schema(settings), storage, tenants.acme_token)
    plain = Streams(plain_schema(settings), storage, tenants.acme_token)
    try:
        await shared.open()
        await plain.open()
        yield shared, plain
    finally:
        await shared.close()
        await plain.close()


def _answer(result: Any) -> dict[str, Any]:
    errors = [error.formatted for error in result.errors or ()]
    return {"data": result.data, "errors": errors, "extensions": result.extensions}


async def test_shared_events_answer_as_the_plain_path(
    both: tuple[Streams, Streams], storage: Storage
) -> None:
    shared, plain = both
    for target, favorite in CHANGES:
        await storage.favorites.set("main", target, favorite, now())
        ours, theirs = await shared.results(), await plain.results()
        assert [_answer(r) for r in ours] == [_answer(r) for r in theirs]
        for i in range(0, len(ours), EACH):  # the same document and variables
            group = ours[i : i + EACH]
            assert all(r.data is group[0].data for r in group), "executed once, shared"
            assert len({id(r.data) for r in theirs[i : i + EACH]}) == EACH
        assert ours[-1].data != ours[-1 - EACH].data  # the variables' results were not mixed up


async def test_an_unknown_message_is_null_for_every_subscription(
    both: tuple[Streams, Streams], storage: Storage
) -> None:
    shared, plain = both
    target = FavoriteTarget(FavoriteType.MESSAGE, CHAT_JID, "NOT-A-STORED-MESSAGE")
    await storage.favorites.set("main", target, True, now())
    ours, theirs = await shared.results(), await plain.results()
    assert [_answer(r) for r in ours] == [_answer(r) for r in theirs]
    assert ours[0].data["favoriteChanged"]["message"] is None


@pytest.mark.parametrize("schema_of", [shared_schema, plain_schema])
async def test_a_long_subscription_keeps_nothing_per_change(
    settings: Settings, storage: Storage, tenants: Tenants, schema_of: Any
) -> None:
    """A subscription lives as long as its connection, and hears of every change: what
    one event's execution collects (its fields, their sub-fields) is collected anew for
    the next, so it must not be kept for the subscription's life."""
    streams = Streams(schema_of(settings), storage, tenants.acme_token)
    await streams.open()
    target = CHANGES[0][0]

    async def changes(count: int, first: int) -> None:
        for n in range(first, first + count):
            await storage.favorites.set("main", target, n % 2 == 0, now())
            assert all(result.data for result in await streams.results())

    try:
        await changes(10, 0)  # the process's caches warm
        tracemalloc.start()
        try:
            # Traced: what was allocated since, so the bounded caches fill up again first
            # (the results shared by event and document, SHARED_EVENTS); then a second run.
            await changes(SHARED_EVENTS // len(SUBSCRIPTIONS) + 10, 0)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            await changes(60, 1)
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    finally:
        await streams.close()
    executions = 60 * len(SUBSCRIPTIONS)  # the shared path's: once per document and variables
    assert kept < executions * 256, f"{kept / executions:.0f} bytes kept per execution"


@pytest.mark.parametrize(
    ("instance", "token"),
    [("unknown", "acme"), ("main", "globex"), ("main", None)],
)
async def test_errors_before_any_event_answer_as_the_plain_path(
    settings: Settings, storage: Storage, tenants: Tenants, instance: str, token: str | None
) -> None:
    """A subscription refused when it starts: its error, made public by PublicErrors."""
    answers = []
    for schema in (shared_schema(settings), plain_schema(settings)):
        caller = None if token is None else getattr(tenants, f"{token}_token")
        context = build_context(storage, caller, cache_messages=False)
        stream = await schema.subscribe(FULL, {"instance": instance}, context_value=context)
        async with asyncio.timeout(TIMEOUT):
            answers.append(_answer(await anext(stream)))
        await stream.aclose()
    assert answers[0] == answers[1]
    assert answers[0]["errors"][0]["extensions"]["code"]
    assert answers[0]["extensions"] == {"asked": True, "hooked": True}


MESSAGES: list[dict[str, Any]] = [
    {"type": "connection_ack"},
    {"type": "pong"},
    {"id": "1", "type": "next", "payload": {"data": {"a": 1, "b": ["é", None, 2.5]}}},
    {"id": "x-2", "type": "next", "payload": {"data": None}},
    {"id": "3", "type": "next", "payload": {"data": {"a": 1}, "errors": [{"message": "m"}]}},
    {"id": "4", "type": "next", "payload": {"data": {"a": 1}, "extensions": {"k": "v"}}},
    {"id": "5", "type": "error", "payload": [{"message": "no"}]},
    {"id": "6", "type": "complete"},
    {"type": "next", "id": "7", "payload": {"data": {"order": "differs"}}},
]


def test_shared_payloads_are_the_plain_encoding() -> None:
    payloads = SharedPayloads(size=2)
    shared = {"favoriteChanged": {"chatJid": 'a"b\\c', "favorite": True}}
    messages = [
        *MESSAGES,
        *({"id": str(i), "type": "next", "payload": {"data": shared}} for i in range(5)),
    ]
    for message in [*messages, *messages]:  # a second time: from the cache, or evicted
        plain = json.dumps(message, separators=(",", ":"))  # Strawberry's encoding
        assert payloads.encode(message) == plain


def test_a_changed_data_object_is_never_served_stale() -> None:
    """An entry is only good while its object is alive and its id is its own."""
    payloads = SharedPayloads(size=1)
    for i in range(50):
        data = {"n": i}
        message = {"id": "1", "type": "next", "payload": {"data": data}}
        assert json.loads(payloads.encode(message))["payload"]["data"] == {"n": i}


async def test_a_change_to_many_subscribers_lets_the_loop_run_between_batches(
    storage: Storage, tenants: Tenants
) -> None:
    """Each batch of subscribers handed a change runs before the next batch is woken, and
    whatever else waits (a request) runs in between: here, a task that ticks."""
    subscribers = [await storage.changes.subscribe("main") for _ in range(3 * DELIVERY_BATCH)]
    events: list[str] = []

    async def consume(subscriber: Subscriber) -> Any:
        favorite = await anext(subscriber)
        events.append("received")
        return favorite

    async def tick() -> None:
        while True:
            events.append("tick")
            await asyncio.sleep(0)

    consumers = [asyncio.ensure_future(consume(s)) for s in subscribers]
    target = CHANGES[0][0]
    # Ticking before the write: the change may come before the write's own answer.
    ticker = asyncio.ensure_future(tick())
    await storage.favorites.set("main", target, True, now())
    try:
        async with asyncio.timeout(TIMEOUT):
            received = await asyncio.gather(*consumers)
    finally:
        ticker.cancel()
        for subscriber in subscribers:
            await subscriber.aclose()
    assert [favorite.target for favorite in received] == [target] * len(subscribers)
    first = events.index("received")
    last = len(events) - 1 - events[::-1].index("received")
    assert events[first:last].count("tick") >= 2  # 3 batches: the loop ran between them


async def test_the_subscribers_of_a_group_are_handed_a_change_together(
    storage: Storage, tenants: Tenants
) -> None:
    """Subscribed in turns, handed over group by group: one connection's subscriptions
    run in one turn of the loop, where their messages leave in one write."""
    groups = [object() for _ in range(4)]
    subscribers = [
        (n % len(groups), await storage.changes.subscribe("main", group=groups[n % len(groups)]))
        for n in range(8 * len(groups))
    ]
    order: list[int] = []

    async def consume(group: int, subscriber: Subscriber) -> None:
        await anext(subscriber)
        order.append(group)

    consumers = [asyncio.ensure_future(consume(g, s)) for g, s in subscribers]
    try:
        await storage.favorites.set("main", CHANGES[0][0], True, now())
        async with asyncio.timeout(TIMEOUT):
            await asyncio.gather(*consumers)
    finally:
        for _, subscriber in subscribers:
            await subscriber.aclose()
    assert sorted(order) == sorted(g for g, _ in subscribers)
    runs = [group for group, _ in itertools.groupby(order)]
    assert len(runs) == len(groups), order
