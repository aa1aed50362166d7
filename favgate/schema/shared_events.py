"""Subscription events executed once per document, their results shared.

A change reaches every
subscription that listens to it, and each used to execute its selection set over it: with
2,000 subscriptions, a change held the event loop for most of a second. An event payload
that carries a ``shared_event_key`` (``favgate.schema.subscriptions``: the stored change
itself) is executed once per (operation, variables, executor class) and key; the other
subscriptions of that document take the same ``ExecutionResult`` (the WebSocket then
encodes its data once too: ``favgate.websocket``), without even the copy of their
executor that graphql-core makes for each event (``SharedEvent``). The result of such
an event depends on nothing else: a subscription document has one root field, which
returns the payload, and what lies under it is read off the change (or loaded by ids it
holds), never off the caller. ``tests/test_fanout.py`` checks the results equal the
unshared path's.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from graphql import GraphQLSchema
from graphql.execution import ExecutionResult

if TYPE_CHECKING:
    from favgate.schema.execution import PlainFieldsExecutionContext

__all__ = ["SHARED_EVENTS", "SharedEvent", "SharedEvents", "shared_events"]

# Events x documents whose results are kept: the recent changes of every document in use.
SHARED_EVENTS = 256


class SharedEvent:
    """A shared event, as ``execute_subscription_event`` meets it: all it asks of a
    per-event executor is ``execute_operation``, which takes the shared result; only the
    subscription that computes it copies its executor (``SharedEvents``)."""

    __slots__ = ("executor", "key", "payload")

    def __init__(self, executor: PlainFieldsExecutionContext, payload: Any, key: Hashable) -> None:
        self.executor, self.payload, self.key = executor, payload, key

    def execute_operation(self, serially: bool | None = None) -> Any:
        return shared_events(self.executor.schema).execute(self)


class SharedEvents:
    """The results of recent subscription events, by event, operation and variables.

    An entry holds an ``ExecutionResult``, or the task computing it (the first
    subscription to meet the event started it; the others await it, shielded, so that one
    subscription ending does not cancel the others' result). Each key's objects are held
    by the entry, so that an ``id`` in a key cannot be reused while it is here.
    """

    def __init__(self, size: int = SHARED_EVENTS) -> None:
        self.size = size
        self._results: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = OrderedDict()

    def execute(self, event: SharedEvent) -> Any:
        executor = event.executor
        operation = executor.operation
        key = (event.key, id(operation), executor.variables_key(), type(executor))
        entry = self._results.get(key)
        if entry is None:
            result = executor.build_unshared_executor(event.payload).execute_operation(False)
            if executor.is_awaitable(result):
                result = asyncio.ensure_future(result)
            self._results[key] = entry = (result, operation)
            if len(self._results) > self.size:
                self._results.popitem(last=False)
        result = entry[0]
        return _shielded(result) if isinstance(result, asyncio.Future) else result


async def _shielded(result: asyncio.Future[ExecutionResult]) -> ExecutionResult:
    return await asyncio.shield(result)


_shared_events: WeakKeyDictionary[GraphQLSchema, SharedEvents] = WeakKeyDictionary()


def shared_events(schema: GraphQLSchema) -> SharedEvents:
    found = _shared_events.get(schema)
    if found is None:
        found = _shared_events[schema] = SharedEvents()
    return found
