"""graphql-core's executor, with plain fields read straight off their source.

Most fields of an answer are plain: Strawberry reads them as an attribute of the object
above, a scalar or an enum (``Favorite.chatJid``, ``Message.text``), an object or a list
of objects (``FavoriteConnection.edges``, ``FavoriteEdge.node``). For each one,
graphql-core builds a resolve info, Strawberry's resolver calls the field's default
resolver, and the value is completed through the generic ``complete_value``, which for an
object goes three calls down before it executes the object's fields. A page of 20
favorites with their messages has about 180 plain leaves and 40 plain objects, and that
bookkeeping was a fifth of the page's CPU. Here, in the loop over an object's fields
(``execute_fields``, as graphql-core's), a plain leaf is ``getattr`` and the leaf's
``coerce_output_value``; a plain object is ``getattr``, the type's ``is_type_of`` (when
Strawberry's own, which ignores the resolve info, as it is not built), and its sub-fields,
collected once per field set by graphql-core's memoized ``collect_subfields``, executed
straight; a list of them is each item so. graphql-core's null checks, errors (located at
their path, built only then) and propagation are kept; an awaitable value or an async
iterable, a ``@stream``, any field under middleware take graphql-core's path unchanged,
and ``@defer`` is left to graphql-core's ``execute_collected_subfields``. An object a
resolver returns skips ``complete_value``'s dispatch the same way.
``tests/test_graphql_execution.py`` checks the answers equal graphql-core's own.

Which fields are plain: ``favgate.schema.plain``. Subscription events executed once per
document: ``favgate.schema.shared_events``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, TypeVar, cast

from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLStreamDirective,
    Undefined,
)
from graphql.execution.collect_fields import CollectedFields
from graphql.execution.executor import collect_iterator_awaitables, invalid_return_type_error
from graphql.pyutils import Path, gather_with_cancel, is_iterable
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from favgate.schema.plain import PlainField, PlainLeaf, PlainObject, PlainSchema, plain_schema
from favgate.schema.shared_events import SharedEvent

__all__ = ["PlainFieldsExecutionContext"]

# Field sets whose plan an execution keeps: a document's object selections, and more.
PLANS = 64


class ObjectPlan(NamedTuple):
    """A plain object field in a field set: what completes its values."""

    plain: PlainObject
    details: Any  # graphql-core's field details list
    collected: CollectedFields  # its sub-fields


# What a plain field's value is when it turns out awaitable (or an async iterable).
NOT_PLAIN = object()

ResolveInfo = GraphQLResolveInfo[Any]


def _streamed(field_details_list: Any) -> bool:
    """Whether a field carries ``@stream``, which graphql-core's path delivers."""
    return any(
        directive.name.value == GraphQLStreamDirective.name
        for details in field_details_list
        for directive in details.node.directives or ()
    )


# Values of these exact types are never awaitable: the (Python) check is spared for them,
# which would be most of a page's calls of it (its strings, and the dicts of its objects).
SYNC_TYPES = frozenset({str, int, float, bool, type(None), dict, list})

# The values that ``complete_value`` does not complete: null, or an exception (``_nothing``).
NOTHING = (type(None), type(Undefined), Exception)


def _nothing(value: Any, non_null: bool, parent_type: GraphQLObjectType, nodes: Any) -> None:
    """A field's (or an item's) null or exception, as ``complete_value`` completes it: the
    exception raised, the null error raised where the type is non-null, else None."""
    if isinstance(value, Exception):
        raise value
    if non_null:
        name = nodes[0].node.name.value
        msg = f"Cannot return null for non-nullable field {parent_type}.{name}."
        raise TypeError(msg)


class PlainFieldsExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, plain fields resolved without the detour."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        no_middleware = manager is None or not manager.middlewares
        plain = plain_schema(self.schema) if no_middleware else PlainSchema({}, frozenset())
        self.plain_fields, self.plain_objects = plain
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[Any, Any]] = {}

    # Whether events carrying a shared_event_key are executed once for all (a class
    # attribute, so that a test can run the plain path beside it).
    share_events = True
    _variables_key: str | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        key = getattr(payload, "shared_event_key", None) if self.share_events else None
        if key is None:
            return self.build_unshared_executor(payload)
        return SharedEvent(self, payload, key)

    def build_unshared_executor(self, payload: Any) -> Any:
        """The per-event executor of the plain path: a copy of this one, with memos of its
        own. graphql-core's copy shares the subscription's memo of sub-fields, keyed by
        the field lists that each event collects anew: never found again, an entry per
        event and field would be kept as long as the subscription lives."""
        executor = cast(PlainFieldsExecutionContext, super().build_per_event_executor(payload))
        executor._relevant_sub_fields = {}
        executor._plans = {}
        return executor

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
        """graphql-core's ``execute_fields``, its plain fields completed in the loop: no
        ``execute_field`` for them, and no ``Path`` for a leaf unless it fails."""
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            # The plan's lookup, inline: this runs once per object of the answer.
            planned = self._plans.get((parent_type, id(grouped_field_set)))
            plan = self._plan(parent_type, grouped_field_set) if planned is None else planned[1]
            for name, details, plain in plan:
                result = NOT_PLAIN
                if isinstance(plain, PlainLeaf):
                    result = self._plain_leaf(parent_type, source_value, details, plain, path, name)
                    if result is not NOT_PLAIN:  # a leaf's value, never awaitable
                        results[name] = result
                        continue
                elif plain is not None:
                    result = self._plain_object(
                        parent_type, source_value, plain, path, name, position_context
                    )
                if result is NOT_PLAIN:
                    result = super().execute_field(
                        parent_type,
                        source_value,
                        details,
                        Path(path, name, parent_type.name),
                        position_context,
                    )
                if result is not Undefined:
                    results[name] = result
                    if type(result) not in SYNC_TYPES and is_awaitable(result):
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
    ) -> list[tuple[str, Any, PlainLeaf | ObjectPlan | None]]:
        """Each field of the set with its plain leaf or object (None if it is neither), once
        per set: graphql-core collects one set for all the objects of a list."""
        key = (parent_type, id(grouped_field_set))
        cached = self._plans.get(key)
        if cached is None:
            type_name = parent_type.name
            plan = []
            for name, details in grouped_field_set.items():
                plain = self.plain_fields.get((type_name, details[0].node.name.value))
                plan.append((name, details, self._planned(plain, details)))
            if len(self._plans) >= PLANS:  # bounded, however many sets a document holds
                self._plans.clear()
            # The set is kept with its plan, so that its id cannot be reused meanwhile.
            cached = self._plans[key] = (grouped_field_set, plan)
        return cached[1]

    def _planned(
        self, plain: PlainField | None, field_details_list: Any
    ) -> PlainLeaf | ObjectPlan | None:
        """A plain leaf as it is; a plain object with its sub-fields, collected now (once
        per field set, not once per object), unless it is streamed."""
        if not isinstance(plain, PlainObject):
            return plain
        if _streamed(field_details_list):
            return None
        collected = self.collect_subfields(plain.object_type, field_details_list)
        return ObjectPlan(plain, field_details_list, collected)

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        name = field_details_list[0].node.name.value
        plain = self.plain_fields.get((parent_type.name, name))
        if isinstance(plain, PlainLeaf):
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
            if type(result) not in SYNC_TYPES and self.is_awaitable(result):
                return NOT_PLAIN
            if isinstance(result, NOTHING):
                return _nothing(result, plain.non_null, parent_type, field_details_list)
            coerced = plain.leaf_type.coerce_output_value(result)
            if coerced is None or coerced is Undefined:  # graphql-core's error, by its own
                return self.complete_leaf_value(plain.leaf_type, result)
            return coerced
        except Exception as raw_error:
            path = Path(parent_path, response_name, parent_type.name)
            self.handle_field_error(raw_error, plain.return_type, field_details_list, path)
            return None

    def _plain_object(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        planned: ObjectPlan,
        parent_path: Path | None,
        response_name: str,
        position_context: Any,
    ) -> Any:
        """A plain object (or list) field's value, completed, maybe awaitable; None with its
        error located; ``NOT_PLAIN`` when the value is awaitable or an async iterable."""
        plain = planned.plain
        path = Path(parent_path, response_name, parent_type.name)
        try:
            value = getattr(source, plain.attribute)
            if self.is_awaitable(value) or (plain.is_list and self.is_async_iterable(value)):
                return NOT_PLAIN
        except Exception as raw_error:
            self.handle_field_error(raw_error, plain.return_type, planned.details, path)
            return None
        return self._completed(parent_type, planned, path, value, position_context, item=False)

    def _completed(
        self,
        parent_type: GraphQLObjectType,
        planned: ObjectPlan,
        path: Path,
        value: Any,
        position_context: Any,
        *,
        item: bool,
    ) -> Any:
        """A plain object field's value, or one item of its list, completed (``item``:
        ``complete_list_item_value``), maybe awaitable; None with its error located."""
        plain, details = planned.plain, planned.details
        non_null, return_type = (
            (plain.item_non_null, plain.item_type) if item else (plain.non_null, plain.return_type)
        )
        try:
            if isinstance(value, NOTHING):
                return _nothing(value, non_null, parent_type, details)
            if plain.is_list and not item:
                completed = self._complete_items(
                    parent_type, planned, path, value, position_context
                )
            else:
                completed = self._complete_object(
                    plain.object_type, planned.collected, details, path, value, position_context
                )
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, details, path)
            return None
        if type(completed) not in SYNC_TYPES and self.is_awaitable(completed):
            return self._located(completed, return_type, details, path)
        return completed

    def _complete_items(
        self,
        parent_type: GraphQLObjectType,
        planned: ObjectPlan,
        path: Path,
        items: Iterable[Any],
        position_context: Any,
    ) -> Any:
        """``complete_iterable_value`` for a plain list of objects, with the same errors."""
        if not is_iterable(items):
            name = planned.details[0].node.name.value
            msg = f"Expected Iterable, but did not find one for field '{parent_type}.{name}'."
            raise GraphQLError(msg)
        is_awaitable = self.is_awaitable
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        iterator = iter(items)
        try:
            for index, item in enumerate(iterator):
                item_path = Path(path, index, None)
                if is_awaitable(item):
                    value = self._awaited_item(
                        parent_type, planned, item_path, item, position_context
                    )
                else:
                    value = self._completed(
                        parent_type, planned, item_path, item, position_context, item=True
                    )
                completed.append(value)
                if type(value) not in SYNC_TYPES and is_awaitable(value):
                    awaitable_indices.append(index)
        except Exception:  # the items started are settled, as graphql-core does
            pending = [completed[index] for index in awaitable_indices]
            pending.extend(collect_iterator_awaitables(iterator, is_awaitable))
            if pending:
                self.settle_in_background(pending)
            raise
        if not awaitable_indices:
            return completed
        return _awaited(completed, awaitable_indices)

    async def _awaited_item(
        self,
        parent_type: GraphQLObjectType,
        planned: ObjectPlan,
        item_path: Path,
        item: Any,
        position_context: Any,
    ) -> Any:
        """``complete_awaitable_list_item_value``: an awaitable item, awaited, completed."""
        try:
            value = await self.with_abort_signal(item)
        except Exception as raw_error:
            self.handle_field_error(raw_error, planned.plain.item_type, planned.details, item_path)
            return None
        completed = self._completed(
            parent_type, planned, item_path, value, position_context, item=True
        )
        return await completed if self.is_awaitable(completed) else completed

    async def _located(
        self,
        completed: Any,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        path: Path,
    ) -> Any:
        """An awaitable completion, its error located at ``path``, as graphql-core's."""
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        info: ResolveInfo,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's ``complete_value``; an object of a plainly checked type (that a
        resolver returned, or an awaitable) completed straight."""
        if (
            isinstance(return_type, GraphQLObjectType)
            and return_type.name in self.plain_objects
            and not isinstance(result, NOTHING)
        ):
            collected = self.collect_subfields(return_type, field_details_list)
            return self._complete_object(
                return_type, collected, field_details_list, path, result, position_context, info
            )
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete_object(
        self,
        object_type: GraphQLObjectType,
        collected: CollectedFields,
        field_details_list: Any,
        path: Path,
        value: Any,
        position_context: Any,
        info: ResolveInfo | None = None,
    ) -> Any:
        """``complete_object_value`` for a plainly checked type: its check (Strawberry's own
        reads no info: a plain field has none), then its sub-fields executed."""
        check = object_type.is_type_of
        if check is not None and not check(value, info):  # type: ignore[arg-type]
            raise invalid_return_type_error(object_type, value, field_details_list)
        grouped_field_set, new_defer_usages, _ = collected
        if new_defer_usages or position_context is not None:
            return self.execute_collected_subfields(
                object_type, value, path, grouped_field_set, new_defer_usages, position_context
            )
        return self.execute_fields(object_type, value, path, grouped_field_set, None)


Results = TypeVar("Results", dict[str, Any], list[Any])


async def _awaited(results: Results, awaitable_keys: list[Any]) -> Results:
    """``results`` with its awaitable values awaited, as graphql-core's ``get_results``."""
    if len(awaitable_keys) == 1:
        key = awaitable_keys[0]
        results[key] = await results[key]
    else:
        awaited = await gather_with_cancel(*(results[key] for key in awaitable_keys))
        for key, value in zip(awaitable_keys, awaited, strict=True):
            results[key] = value
    return results
