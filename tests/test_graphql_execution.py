"""Plain fields (``favgate.schema.execution``) answer exactly as graphql-core's path:
values, nulls, and the errors of a value that does not fit its type.

Two schemas of the same types, one with the plain-field execution context and one with
Strawberry's, run the same documents; the answers must be equal. The types misbehave on
purpose: a null in a non-null field or list item, a string in an Int, an unknown enum
value, an exception or an awaitable where a value belongs, an object of the wrong type,
a list that is not one or fails midway.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any, NewType

import pytest
import strawberry
from graphql import experimental_execute_incrementally, parse
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from favgate.schema import build_schema, execution
from favgate.schema.execution import PlainFieldsExecutionContext
from favgate.schema.limits import SuggestionFreeExecutionContext
from favgate.schema.plain import PlainObject, plain_schema

# A scalar whose coercion gives null for an empty string: graphql-core's error.
Blank = NewType("Blank", str)
BLANK = strawberry.scalar(name="Blank", serialize=lambda v: v or None, parse_value=str)


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def _later(value: Any) -> asyncio.Future[Any]:
    # A future, not a coroutine: one left unawaited (its field not selected) is no warning.
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


@strawberry.interface
class Labelled:
    label: str


@strawberry.type
class Part:
    label: str
    size: int | None
    sub: Part | None

    @strawberry.field
    async def later(self) -> str:
        return f"later {self.label}"

    @strawberry.field
    async def boom(self) -> int:
        raise ValueError("a non-null resolver's error, under a plain object")


@strawberry.type
class Tagged(Labelled):
    """Implements an interface: Strawberry gives it an ``is_type_of``."""

    sub: Part | None


@strawberry.type
class Checked:
    """Its own ``is_type_of``, which reads the resolve info: graphql-core's path."""

    label: str

    @classmethod
    def is_type_of(cls, obj: Any, info: strawberry.Info) -> bool:
        return isinstance(obj, Checked) and info.field_name is not None


@strawberry.type
class Slow:
    """An ``is_type_of`` that is awaited: graphql-core's path."""

    label: str

    @classmethod
    async def is_type_of(cls, obj: Any, info: strawberry.Info) -> bool:  # type: ignore[override]
        return isinstance(obj, Slow)


@strawberry.type
class Item:
    name: str
    count: int
    maybe: int | None
    color: Color
    colors: list[Color]
    blank: Blank | None
    part: Part
    maybe_part: Part | None
    parts: list[Part]
    maybe_parts: list[Part | None] | None
    strict_parts: list[Part] | None
    loose_parts: list[Part | None]
    tagged: Tagged | None
    labelled: Labelled | None  # an interface: graphql-core's path
    taggeds: list[Tagged | None]
    checked: Checked | None
    slow: Slow | None

    @strawberry.field
    def computed(self) -> str:
        return f"computed {self.name}"

    @strawberry.field
    def failing(self) -> int | None:
        raise ValueError("a resolver's error, beside the plain fields' own")

    @strawberry.field
    async def later(self) -> str:
        return f"later {self.count}"

    @strawberry.field
    def child(self) -> Item:
        return self

    @strawberry.field
    async def later_part(self) -> Part:
        return self.part

    @strawberry.field
    def tagged_now(self) -> Tagged | None:
        return self.tagged

    @strawberry.field
    def slow_now(self) -> Slow | None:
        return self.slow


@strawberry.type
class Query:
    @strawberry.field
    def items(self, kind: int) -> list[Item | None]:
        return [_item(kind, index) for index in range(3)]

    @strawberry.field
    def item(self, kind: int) -> Item:
        return _item(kind, 0)


def _item(kind: int, index: int) -> Item:
    """Item ``kind``: 0 well-formed, then one kind of misbehaviour each."""
    part = _part(index)
    values: dict[str, Any] = {
        "name": f"item {index}",
        "count": index,
        "maybe": None if index % 2 else index,
        "color": Color.RED,
        "colors": [Color.RED, Color.BLUE],
        "blank": "not blank",
        "part": part,
        "maybe_part": None if index % 2 else part,
        "parts": [part, _part(index + 1)],
        "maybe_parts": [part, None],
        "strict_parts": [part],
        "loose_parts": [None, part],
        "tagged": Tagged(label=f"tagged {index}", sub=part),
        "labelled": Tagged(label=f"labelled {index}", sub=None),
        "taggeds": [Tagged(label="tagged", sub=None), None],
        "checked": Checked(label=f"checked {index}"),
        "slow": Slow(label=f"slow {index}"),
    }
    item = Item(**values)
    for attribute, value in _broken(kind, part).items():
        object.__setattr__(item, attribute, value)
    return item


def _part(index: int) -> Part:
    return Part(label=f"part {index}", size=index, sub=Part(label="sub", size=None, sub=None))


LISTS = ["parts", "maybe_parts", "strict_parts", "loose_parts"]


def _broken(kind: int, part: Part) -> dict[str, Any]:
    """The attributes that misbehave in item ``kind``, made anew (a generator is read once)."""
    broken: list[Any] = [
        {},
        {"name": None},
        {"count": "three"},
        {"count": 2**40},
        {"color": "GREEN"},
        {"maybe": ValueError("an exception as a value")},
        {"name": _later("awaited")},
        {"maybe": 1.5, "blank": ""},  # nullable: their errors kept beside
        {"colors": [Color.RED, None]},
        {"part": None, "maybe_part": ValueError("an object that is an exception")},
        {"part": _later(part), "maybe_part": _later(None), "tagged": _Failing()},
        {"part": 5, "maybe_part": "a string"},  # no fields to read on them
        {"part": Part(label="p", size=1, sub=ValueError("nested")), "maybe_part": part},
        {"tagged": part, "taggeds": [part], "labelled": part, "checked": part},  # refused
        {"slow": part},  # refused, awaited
        {"tagged": Tagged(label="t", sub=_later(ValueError("awaited"))), "checked": None},
        lambda: [part, None, part],
        lambda: [part, ValueError("an item that is an exception")],
        lambda: 5,
        lambda: "not a list",
        lambda: {"a mapping": part},
        lambda: _failing_midway(part),
        lambda: [_later(part), part, _later(None), _later(ValueError("an awaited item"))],
        lambda: [_Failing(), part],
        lambda: _later([part, None]),
        lambda: _items_later(part),
        {
            "taggeds": [Tagged(label="t", sub=None), part, _later(part)],  # is_type_of refuses
            "parts": [Tagged(label="a tagged, not a part", sub=None)],  # Part has none
        },
    ]
    chosen = broken[kind % len(broken)]
    return {name: chosen() for name in LISTS} if callable(chosen) else chosen


class _Failing:
    """An awaitable that fails when awaited (and warns of nothing when it is not)."""

    def __await__(self) -> Any:
        raise ValueError("an awaitable that fails")
        yield


def _failing_midway(part: Part) -> Any:
    yield part
    raise ValueError("a list that fails midway")


async def _items_later(part: Part) -> Any:
    yield part
    yield None


KINDS = 27
CONFIG = StrawberryConfig(scalar_map={Blank: BLANK})
plain = strawberry.Schema(
    query=Query, execution_context_class=PlainFieldsExecutionContext, config=CONFIG
)
stock = strawberry.Schema(
    query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext, config=CONFIG
)
FIELDS = ["name", "count", "maybe", "color", "colors", "blank", "computed", "__typename"]
# Plain objects and lists of them (of each nullability), nested, spread, skipped.
OBJECTS = [
    "part { label size }",
    "maybePart { label sub { label size } }",
    "parts { label later }",
    "maybeParts { label sub { size } }",
    "strictParts { ...PartBits }",
    "looseParts { ... on Part { label } size @skip(if: true) sub @include(if: true) { label } }",
    "tagged { label sub { label } }",
    "labelled { label ... on Tagged { sub { label } } }",
    "taggeds { label __typename }",
    "checked { label }",
    "part { label } part { size sub { label } }",
    "laterPart { label later }",
    "taggedNow { label }",
    "slow { label }",
    "slowNow { label }",
]
# Besides: resolvers that fail or await among plain fields, objects under them, fields
# merged, skipped or spread from fragments (the sets graphql-core collects per object).
MORE = [
    "failing",
    "later",
    "child { name maybe failing }",
    "child { count later }",
    "name @skip(if: true)",
    "count @include(if: false)",
    "... on Item { maybe name }",
    "...Parts",
    "strictParts { label boom }",  # a non-null error nulls the item, through the list
    "looseParts { size boom }",
    "part @skip(if: true) { label }",
    "maybeParts @include(if: true) { label }",
]
FRAGMENTS = {
    "...Parts": "fragment Parts on Item { color count child { color } part { label } }",
    "...PartBits": "fragment PartBits on Part { label sub { size later } }",
}
LEAF_KINDS = [1, 2, 3, 4, 5, 7, 8]  # the kinds whose leaves fail (6 awaits, no error)
OBJECT_KINDS = range(9, KINDS)


def _document(root: str, kind: int, fields: list[str]) -> str:
    """``root``'s items of ``kind`` with ``fields``, and the fragments they spread."""
    selection = " ".join(fields)
    used = [fragment for spread, fragment in FRAGMENTS.items() if spread in selection]
    return f"{{ {root}(kind: {kind}) {{ {selection} }} }} {' '.join(used)}"


async def answers(query: str) -> list[tuple[Any, list[Any]]]:
    results = [await schema.execute(query) for schema in (plain, stock)]
    return [(r.data, [error.formatted for error in r.errors or []]) for r in results]


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(
    kind=st.integers(0, KINDS - 1),
    fields=st.lists(st.sampled_from(FIELDS + OBJECTS + MORE), min_size=1, max_size=6),
    root=st.sampled_from(["items", "item"]),
    alias=st.booleans(),
)
@pytest.mark.slow
async def test_plain_fields_answer_as_graphql_core(
    kind: int, fields: list[str], root: str, alias: bool
) -> None:
    if alias:
        fields = [_aliased(index, field) for index, field in enumerate(fields)]
    got, expected = await answers(_document(root, kind, fields))
    assert got == expected
    assert expected[0] is not None or root == "item"  # executed, not refused


def _aliased(index: int, field: str) -> str:
    return field if field.startswith("...") else f"a{index}: {field}"


@pytest.mark.parametrize("kind", range(KINDS))
async def test_every_misbehaviour(kind: int) -> None:
    got, expected = await answers(_document("items", kind, FIELDS))
    assert got == expected
    assert bool(expected[1]) == (kind in LEAF_KINDS)
    got, expected = await answers(_document("items", kind, OBJECTS))
    assert got == expected
    assert bool(expected[1]) == (kind in OBJECT_KINDS)
    got, expected = await answers(_document("items", kind, FIELDS + OBJECTS + MORE))
    assert got == expected
    assert expected[0] is not None


async def test_plans_dropped_past_their_bound_answer_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "PLANS", 1)  # every object's field set planned anew
    for kind in (5, 12, 20):
        got, expected = await answers(_document("items", kind, FIELDS + OBJECTS + MORE))
        assert got == expected
        assert expected[0] is not None and expected[1]


# Deferred fragments and streamed lists on plain objects: graphql-core's delivery.
INCREMENTAL = [
    "part { label ... @defer { size sub { label } } }",
    "part { ... @defer { sub { label } } sub { size } }",  # sub's fields split in two
    "parts { ... @defer { sub { label later } } sub { size } }",
    'parts { label ... @defer(label: "more") { later sub { size } } }',
    "... @defer { maybePart { label } looseParts { size boom } }",
    "parts @stream(initialCount: 1) { label }",
    "strictParts @stream(initialCount: 0) { label boom }",
    "maybeParts @stream(initialCount: 1, if: false) { label }",
    "taggeds @stream(initialCount: 1) { label ... @defer { sub { label } } }",
]
INCREMENTAL_CONFIG = StrawberryConfig(
    scalar_map={Blank: BLANK}, enable_experimental_incremental_execution=True
)
incremental = strawberry.Schema(query=Query, config=INCREMENTAL_CONFIG)


async def incremental_answer(query: str, executor_class: type[Any]) -> list[Any]:
    """The initial result and every subsequent one, as a client gets them."""
    result = experimental_execute_incrementally(
        incremental._schema,
        parse(query),
        executor_class=executor_class,
        is_awaitable=optimized_is_awaitable,
    )
    result = await result if optimized_is_awaitable(result) else result
    if not hasattr(result, "subsequent_results"):
        return [result.formatted]
    return [result.initial_result.formatted] + [
        later.formatted async for later in result.subsequent_results
    ]


@pytest.mark.parametrize("kind", range(KINDS))
async def test_deferred_and_streamed_plain_objects_answer_alike(kind: int) -> None:
    for selection in INCREMENTAL:
        query = _document("items", kind, [selection])
        got = await incremental_answer(query, PlainFieldsExecutionContext)
        expected = await incremental_answer(query, StrawberryGraphQLCoreExecutionContext)
        assert got == expected, selection
        assert "errors" in expected[0] or expected[0]["data"] is not None


def test_the_plain_fields_of_favgates_schema() -> None:
    fields = plain_schema(build_schema()._schema).fields
    assert ("Favorite", "chatJid") in fields
    assert ("Favorite", "favoritedAt") in fields
    assert ("Message", "text") in fields
    assert isinstance(fields["FavoriteEdge", "node"], PlainObject)
    assert isinstance(fields["FavoriteConnection", "edges"], PlainObject)
    assert isinstance(fields["FavoriteConnection", "pageInfo"], PlainObject)
    assert isinstance(fields["Favorite", "message"], PlainObject)  # maybe awaitable
    assert ("FavoriteConnection", "totalCount") not in fields  # a resolver
    assert not any(type_name.startswith("__") for type_name, _ in fields)


def test_production_keeps_plain_fields() -> None:
    assert issubclass(SuggestionFreeExecutionContext, PlainFieldsExecutionContext)
