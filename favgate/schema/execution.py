"""graphql-core's executor, with plain leaf fields read straight off their source.

Most fields of an answer are plain: a scalar or an enum that Strawberry reads as an
attribute of the object above (``Favorite.chatJid``, ``Message.text``). For each one,
graphql-core builds a resolve info, Strawberry's resolver calls the field's default
resolver, and the value is completed through the generic ``complete_value``. A page of 20
favorites with their messages has about 180 of them, and that bookkeeping was a fifth of
the page's CPU. Here a plain leaf is ``getattr`` and the leaf's ``coerce_output_value``,
with graphql-core's own null check and error handling, completed in the loop over an
object's fields (``execute_fields``, as graphql-core's, which the leaves were most of the
cost of: a ``Path`` and a call each); everything else (resolvers, objects, lists, any
field under middleware) takes graphql-core's path unchanged.
``tests/test_graphql_execution.py`` checks the answers equal graphql-core's own.

**Subscription events are executed once per document.** A change reaches every
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
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    Undefined,
    is_leaf_type,
)
from graphql.execution import ExecutionResult
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

__all__ = ["PlainFieldsExecutionContext", "SharedEvent", "SharedEvents"]

# Events x documents whose results are kept: the recent changes of every document in use.
SHARED_EVENTS = 256
# Field sets whose plan an execution keeps: a document's object selections, and more.
PLANS = 64


class PlainLeaf(NamedTuple):
    attribute: str  # the Python name Strawberry's default resolver reads
    leaf_type: GraphQLLeafType
    return_type: GraphQLOutputType  # the leaf type, or it wrapped in non-null
    non_null: bool


# What a plain leaf's value is when it turns out awaitable.
NOT_PLAIN = object()

PlainLeaves = dict[tuple[str, str], PlainLeaf]  # by (type name, field name)
_plain_leaves: WeakKeyDictionary[GraphQLSchema, PlainLeaves] = WeakKeyDictionary()


def plain_leaves(schema: GraphQLSchema) -> PlainLeaves:
    """The schema's plain leaf fields, found once per schema."""
    found = _plain_leaves.get(schema)
    if found is None:
        found = _plain_leaves[schema] = dict(_find_plain_leaves(schema))
    return found


def _find_plain_leaves(schema: GraphQLSchema) -> Any:
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            return_type = field.type
            non_null = isinstance(return_type, GraphQLNonNull)
            leaf_type = return_type.of_type if non_null else return_type
            if _is_plain(definition) and is_leaf_type(leaf_type) and not field.args:
                yield (
                    (type_.name, name),
                    PlainLeaf(definition.python_name, leaf_type, return_type, non_null),
                )


def _is_plain(definition: object) -> bool:
    # Strawberry resolves a basic field (no resolver, no field extension) with its
    # default resolver: getattr unless the schema's config says otherwise.
    return (
        isinstance(definition, StrawberryField)
        and definition.is_basic_field
        and definition.default_resolver is getattr
    )


class PlainFieldsExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, plain leaf fields resolved without the detour."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        no_middleware = manager is None or not manager.middlewares
        self.plain_leaves = plain_leaves(self.schema) if no_middleware else {}
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[Any, Any]] = {}

    # Whether events carrying a shared_event_key are executed once for all (a class
    # attribute, so that a test can run the plain path beside it).
    share_events = True
    _variables_key: str | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        key = getattr(payload, "shared_event_key", None) if self.share_events else None
        if key is None:
            return super().build_per_event_executor(payload)
        return SharedEvent(self, payload, key)

    def build_unshared_executor(self, payload: Any) -> Any:
        """The per-event executor of the plain path: a copy of this one."""
        return super().build_per_event_executor(payload)

    def variables_key(self) -> str:
        """This operation's variables, as a key (computed once per subscription)."""
        if self._variables_key is None:
            self._variables_key = repr(sorted(self.variable_values.coerced.items()))
        return self._variables_key

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: dict[str, Any],
        position_context: Any,
    ) -> Any:
        """graphql-core's ``execute_fields``, its plain leaves completed in the loop: no
        ``Path`` and no ``execute_field`` for them unless one fails. The rest as there."""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for name, details, plain in self._plan(parent_type, grouped_field_set):
                if plain is not None:
                    result = self._plain_leaf(parent_type, source_value, details, plain, path, name)
                    if result is not NOT_PLAIN:
                        results[name] = result
                        continue
                result = super().execute_field(
                    parent_type,
                    source_value,
                    details,
                    Path(path, name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(name)
        except Exception:
            if awaitable_fields:  # the siblings started are settled, as graphql-core does
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return _awaited(results, awaitable_fields)

    def _plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: dict[str, Any]
    ) -> list[tuple[str, Any, PlainLeaf | None]]:
        """Each field of the set with its plain leaf (None if it is not one), once per set:
        graphql-core collects one set for all the objects of a list."""
        key = (parent_type, id(grouped_field_set))
        cached = self._plans.get(key)
        if cached is None:
            leaves, type_name = self.plain_leaves, parent_type.name
            plan = [
                (name, details, leaves.get((type_name, details[0].node.name.value)))
                for name, details in grouped_field_set.items()
            ]
            if len(self._plans) >= PLANS:  # per-event copies share the dict: bounded
                self._plans.clear()
            # The set is kept with its plan, so that its id cannot be reused meanwhile.
            cached = self._plans[key] = (grouped_field_set, plan)
        return cached[1]

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        name = field_details_list[0].node.name.value
        plain = self.plain_leaves.get((parent_type.name, name))
        if plain is not None:
            result = self._plain_leaf(
                parent_type, source, field_details_list, plain, path.prev, path.key
            )
            if result is not NOT_PLAIN:
                return result
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _plain_leaf(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        plain: PlainLeaf,
        parent_path: Path | None,
        response_name: str | int,
    ) -> Any:
        """A plain leaf's value, completed; None with its error located at its path (built
        only then); ``NOT_PLAIN`` when the value is awaitable: the usual path awaits it."""
        try:
            result = getattr(source, plain.attribute)
            if self.is_awaitable(result):
                return NOT_PLAIN
            name = field_details_list[0].node.name.value
            return self._complete_plain_leaf(plain, result, parent_type, name)
        except Exception as raw_error:
            path = Path(parent_path, response_name, parent_type.name)
            self.handle_field_error(raw_error, plain.return_type, field_details_list, path)
            return None

    def _complete_plain_leaf(
        self, plain: PlainLeaf, result: Any, parent_type: GraphQLObjectType, name: str
    ) -> Any:
        """``complete_value`` for a leaf, with the same errors."""
        if isinstance(result, Exception):
            raise result
        if result is None or result is Undefined:
            if plain.non_null:
                msg = f"Cannot return null for non-nullable field {parent_type}.{name}."
                raise TypeError(msg)
            return None
        return self.complete_leaf_value(plain.leaf_type, result)


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


async def _awaited(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    """``results`` with its awaitable fields' values, as graphql-core's ``get_results``."""
    if len(awaitable_fields) == 1:
        field = awaitable_fields[0]
        results[field] = await results[field]
    else:
        awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
        results.update(zip(awaitable_fields, awaited, strict=True))
    return results


async def _shielded(result: asyncio.Future[ExecutionResult]) -> ExecutionResult:
    return await asyncio.shield(result)


_shared_events: WeakKeyDictionary[GraphQLSchema, SharedEvents] = WeakKeyDictionary()


def shared_events(schema: GraphQLSchema) -> SharedEvents:
    found = _shared_events.get(schema)
    if found is None:
        found = _shared_events[schema] = SharedEvents()
    return found
