"""Plain leaf fields (``favgate.schema.execution``) answer exactly as graphql-core's path:
values, nulls, and the errors of a value that does not fit its type.

Two schemas of the same types, one with the plain-field execution context and one with
Strawberry's, run the same documents; the answers must be equal. The types misbehave on
purpose: a null in a non-null field, a string in an Int, an unknown enum value, an
exception or an awaitable where a value belongs.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest
import strawberry
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from favgate.schema import build_schema, execution
from favgate.schema.execution import PlainFieldsExecutionContext, PlainObject, plain_schema
from favgate.schema.limits import SuggestionFreeExecutionContext


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def _later(value: Any) -> asyncio.Future[Any]:
    # A future, not a coroutine: one left unawaited (its field not selected) is no warning.
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


@strawberry.type
class Item:
    name: str
    count: int
    maybe: int | None
    color: Color
    colors: list[Color]

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
    values: dict[str, Any] = {
        "name": f"item {index}",
        "count": index,
        "maybe": None if index % 2 else index,
        "color": Color.RED,
        "colors": [Color.RED, Color.BLUE],
    }
    broken: list[dict[str, Any]] = [
        {},
        {"name": None},
        {"count": "three"},
        {"count": 2**40},
        {"color": "GREEN"},
        {"maybe": ValueError("an exception as a value")},
        {"name": _later("awaited")},
        {"maybe": 1.5},
        {"colors": [Color.RED, None]},
    ]
    item = Item(**values)
    for attribute, value in broken[kind % len(broken)].items():
        object.__setattr__(item, attribute, value)
    return item


KINDS = 9
plain = strawberry.Schema(query=Query, execution_context_class=PlainFieldsExecutionContext)
stock = strawberry.Schema(
    query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext
)
FIELDS = ["name", "count", "maybe", "color", "colors", "computed", "__typename"]
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
]
FRAGMENT = "fragment Parts on Item { color count child { color } }"


async def answers(query: str) -> list[tuple[Any, list[Any]]]:
    results = [await schema.execute(query) for schema in (plain, stock)]
    return [(r.data, [error.formatted for error in r.errors or []]) for r in results]


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(
    kind=st.integers(0, KINDS - 1),
    fields=st.lists(st.sampled_from(FIELDS + MORE), min_size=1, max_size=6),
    root=st.sampled_from(["items", "item"]),
    alias=st.booleans(),
)
@pytest.mark.slow
async def test_plain_fields_answer_as_graphql_core(
    kind: int, fields: list[str], root: str, alias: bool
) -> None:
    selection = " ".join(_aliased(i, f) if alias else f for i, f in enumerate(fields))
    fragment = FRAGMENT if "...Parts" in fields else ""
    got, expected = await answers(f"{{ {root}(kind: {kind}) {{ {selection} }} }} {fragment}")
    assert got == expected
    assert expected[0] is not None or root == "item"  # executed, not refused


def _aliased(index: int, field: str) -> str:
    return field if field.startswith("...") else f"a{index}: {field}"


@pytest.mark.parametrize("kind", range(KINDS))
async def test_every_misbehaviour(kind: int) -> None:
    got, expected = await answers(f"{{ items(kind: {kind}) {{ {' '.join(FIELDS)} }} }}")
    assert got == expected
    assert (expected[1] == []) == (kind in (0, 6))  # an awaitable is awaited, no error
    everything = " ".join(FIELDS + MORE)
    got, expected = await answers(f"{{ items(kind: {kind}) {{ {everything} }} }} {FRAGMENT}")
    assert got == expected
    assert expected[0] is not None


async def test_plans_dropped_past_their_bound_answer_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "PLANS", 1)  # every object's field set planned anew
    everything = " ".join(FIELDS + MORE)
    got, expected = await answers(f"{{ items(kind: 5) {{ {everything} }} }} {FRAGMENT}")
    assert got == expected
    assert expected[0] is not None and expected[1]


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
