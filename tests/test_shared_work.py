"""What the executions of one operation share (``favgate.schema.shared_work.OperationWork``,
kept with the plan) answers exactly as graphql-core's path, request after request.

Hypothesis draws documents of fields with arguments (literals, variables, defaults, enums,
lists, input objects), aliases, ``@skip``/``@include`` (literal or variable), inline and
named fragments, ``@defer``; each runs with several drawn variables through one plan (its
collections and argument values kept from the first request on) and through Strawberry's
own executor, built anew each time. The answers, or the errors, must be equal.
"""

from __future__ import annotations

import enum
import re
import zlib
from typing import Any

import pytest
import strawberry
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse, validate
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from favgate.schema import execution, shared_work
from favgate.schema.execution import PlainFieldsExecutionContext
from favgate.schema.plan import Plan


@strawberry.enum
class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


@strawberry.input
class Filter:
    word: str
    sizes: list[Size] | None = None
    limit: int = 2


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Thing(Named):
    size: Size

    @strawberry.field
    def echo(
        self,
        word: str = "hi",
        times: int | None = None,
        size: Size = Size.SMALL,
        filter: Filter | None = None,
        words: list[str] | None = None,
    ) -> str:
        if words is not None:
            words.append("changed")  # a resolver that changes its argument in place
        return repr((self.name, word, times, size, filter, words))

    @strawberry.field
    def child(self) -> Thing | None:
        return Thing(name=f"{self.name}/child", size=Size.LARGE) if len(self.name) < 30 else None

    @strawberry.field
    def things(self, n: int = 2) -> list[Thing]:
        return [Thing(name=f"{self.name}/{index}", size=self.size) for index in range(min(n, 3))]


@strawberry.type
class Query:
    @strawberry.field
    def thing(self, name: str = "root") -> Thing:
        return Thing(name=name, size=Size.SMALL)

    @strawberry.field
    def named(self) -> Named:
        return Thing(name="named", size=Size.LARGE)


@strawberry.type
class Mutation:
    @strawberry.field
    def set(self, word: str, flag: bool = True) -> Thing:
        return Thing(name=f"{word} {flag}", size=Size.LARGE)


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(enable_experimental_incremental_execution=True),
)
DECLARED = {
    "w": 'String = "dw"',
    "t": "Int",
    "s": "Size = LARGE",
    "f": "Filter",
    "ws": "[String!]",
    "b": "Boolean = false",
    "c": "Boolean!",
    "d": "Boolean = true",
    "e": "Boolean = true",  # only in a fragment's directives
    "n": "Int = 1",
}
FITTING = {
    "w": st.none() | st.sampled_from(["a", "b"]),
    "t": st.none() | st.integers(0, 3),
    "s": st.sampled_from(["SMALL", "LARGE"]),
    "f": st.none() | st.fixed_dictionaries({"word": st.just("fw")}, optional={"limit": st.just(5)}),
    "ws": st.none() | st.lists(st.sampled_from(["x", "y"]), max_size=2),
    "b": st.none() | st.booleans(),  # null: @skip(if: $b)'s error, never kept
    "c": st.booleans(),
    "d": st.booleans(),
    "e": st.booleans(),
    "n": st.integers(0, 3),
}
# Mostly variables that fit (the non-null $c given), so that most requests run.
VARIABLES = st.one_of(
    st.fixed_dictionaries(
        {"c": FITTING["c"]}, optional={k: v for k, v in FITTING.items() if k != "c"}
    ),
    st.fixed_dictionaries(
        {}, optional={name: values | st.just("wrong") for name, values in FITTING.items()}
    ),
)

ARGUMENTS = [
    "",
    '(word: "lit")',
    "(word: $w)",
    "(times: 3, size: LARGE)",
    "(times: $t, size: $s)",
    '(filter: {word: "f", sizes: [LARGE, SMALL]})',
    "(filter: {word: $w, limit: $t})",
    "(filter: $f)",
    '(words: ["a", "b"])',
    '(words: [$w, "c"])',
    "(words: $ws)",
]
DIRECTIVES = [
    "",
    "",
    "@skip(if: true)",
    "@skip(if: false)",
    "@include(if: false)",
    "@skip(if: $b)",
    "@include(if: $c)",
    "@include(if: $b) @skip(if: $c)",
]
FRAGMENTS = {
    "...T": 'fragment T on Thing { name t: echo(word: "frag") child { size } }',
    "...S": "fragment S on Thing { size @skip(if: $e) child @include(if: $e) { name } }",
    "...N": "fragment N on Named { name ... on Thing { tn: things(n: $n) { name } } }",
}


# Where a selection's directives go.
MARK = "@@"


def _selections(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(
        st.sampled_from(["name", "size", "__typename"]),
        # Aliased by their arguments: fields of one name and other arguments cannot merge.
        st.sampled_from([f"e{index}: echo{args} @@" for index, args in enumerate(ARGUMENTS)]),
        st.sampled_from(list(FRAGMENTS)),
    ).map(lambda selection: selection if MARK in selection else f"{selection} {MARK}")
    if depth == 0:
        return leaf
    inner = _selection_set(depth - 1)
    return st.one_of(
        leaf,
        st.builds("child @@ {}".format, inner),
        st.builds("t2: things(n: 2) @@ {}".format, inner),
        st.builds("tn: things(n: $n) @@ {}".format, inner),
        st.builds("... on Thing @@ {}".format, inner),
        st.builds("... on Named @@ {{ name ... on Thing {} }}".format, inner),
        st.builds("... @defer @@ {}".format, inner),
        st.builds("... @defer(if: $d) @@ {}".format, inner),
    )


def _selection_set(depth: int) -> st.SearchStrategy[str]:
    aliased = st.tuples(st.booleans(), _selections(depth), st.sampled_from(DIRECTIVES))
    return st.lists(aliased, min_size=1, max_size=4).map(_joined)


def _joined(selections: list[tuple[bool, str, str]]) -> str:
    parts = []
    for alias, selection, directives in selections:
        if alias and not selection.startswith(("...", "e", "t")):  # named by what it selects
            selection = f"a{zlib.crc32(selection.encode())}: {selection}"
        parts.append(selection.replace(MARK, directives, 1))
    return "{ " + " ".join(parts) + " }"


ROOTS = [
    ("query", 'thing(name: "r")'),
    ("query", "thing"),
    ("query", "named"),
    ("mutation", "set(word: $w)"),
    ("mutation", 'set(word: "m", flag: false)'),
]


def _document(kind: str, root: str, selection_set: str) -> str:
    if root == "named":  # an interface: its object's fields through a fragment
        selection_set = f"{{ name ... on Thing {selection_set} }}"
    body = f"{{ {root} {selection_set} a: __typename }}"
    used = [fragment for spread, fragment in FRAGMENTS.items() if spread in selection_set]
    variables = sorted(set(re.findall(r"\$(\w+)", body + " ".join(used))))
    header = ", ".join(f"${name}: {DECLARED[name]}" for name in variables)
    return f"{kind} Op{f'({header})' if header else ''} {body} {' '.join(used)}"


def plan_of(document: str) -> Plan | None:
    parsed = parse(document)
    if validate(schema._schema, parsed):
        return None
    operation = next(d for d in parsed.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in parsed.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return Plan.of(schema._schema, parsed, operation, fragments)


async def answer(built: Any) -> Any:
    """The errors of variables that do not fit, or every result a client gets."""
    if isinstance(built, list):
        return [error.formatted for error in built]
    result = built.execute_operation()
    result = await result if optimized_is_awaitable(result) else result
    if not hasattr(result, "subsequent_results"):
        return [result.formatted]
    return [result.initial_result.formatted] + [
        later.formatted async for later in result.subsequent_results
    ]


def stock(plan: Plan, variables: dict[str, Any]) -> Any:
    return StrawberryGraphQLCoreExecutionContext.build(
        plan.schema,
        plan.document,
        raw_variable_values=variables,
        is_awaitable=optimized_is_awaitable,
    )


def shared(plan: Plan, variables: dict[str, Any]) -> Any:
    return plan.executor(PlainFieldsExecutionContext, None, variables, False)


async def assert_alike(plan: Plan, requests: list[dict[str, Any]]) -> None:
    for variables in requests:
        expected = await answer(stock(plan, variables))
        assert await answer(shared(plan, variables)) == expected, variables


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(
    root=st.sampled_from(ROOTS),
    selection_set=_selection_set(2),
    requests=st.lists(VARIABLES, min_size=2, max_size=4),
)
@pytest.mark.slow
async def test_shared_work_answers_as_graphql_core(
    root: tuple[str, str], selection_set: str, requests: list[dict[str, Any]]
) -> None:
    plan = plan_of(_document(*root, selection_set))
    assume(plan is not None)
    assert plan is not None
    await assert_alike(plan, requests)


SET = (
    "mutation Set($w: String!) { set(word: $w, flag: true) "
    '{ name echo(word: "bench", words: ["a"]) things { name size } } }'
)
DIRECTED = (
    "query Q($b: Boolean = false, $c: Boolean!) { thing { name @skip(if: $b) "
    "child @include(if: $c) { name echo(times: 2) } ...T } } "
    'fragment T on Thing { size echo(word: "frag") child { size } }'
)


async def test_requests_share_collections_and_literal_arguments() -> None:
    plan = plan_of(SET)
    assert plan is not None
    first = shared(plan, {"w": "one"})
    await answer(first)
    second = shared(plan, {"w": "two"})
    assert second._shared is first._shared and second._shared.root is not None
    assert second._relevant_sub_fields is first._relevant_sub_fields
    steps = list(first._arguments.values())
    literal = next(step for step in steps if step.node.name.value == "echo")
    assert literal.steps is not None
    assert [value for _, value, *_ in literal.steps if value is not shared_work.PER_REQUEST] == [
        "bench",
        None,  # the defaults: times, size, filter
        Size.SMALL,
        None,
    ]  # words: a list, coerced per request (the resolver changes it)
    await assert_alike(plan, [{"w": "one"}, {"w": "two"}, {"w": "one"}])


async def test_collections_are_kept_by_the_directives_variables() -> None:
    plan = plan_of(DIRECTED)
    assert plan is not None
    work = plan.work(PlainFieldsExecutionContext)
    assert work.directive_variables == ("b", "c")
    on, off = shared(plan, {"c": True}), shared(plan, {"c": False})
    assert on._shared is not off._shared
    assert shared(plan, {"c": True, "b": False})._shared is on._shared  # b's default
    await assert_alike(plan, [{"c": True}, {"c": False}, {"b": True, "c": True}, {"c": None}])


async def test_fragments_with_variables_share_nothing() -> None:
    operation = parse("query { thing { ...F } } fragment F on Thing { name }")
    fragment = operation.definitions[1]
    assert isinstance(fragment, FragmentDefinitionNode)
    work = shared_work.OperationWork(operation.definitions[0], [fragment])  # type: ignore[arg-type]
    assert work.directive_variables == ()
    with_variables = parse(
        "fragment F($x: Boolean) on Thing { name @skip(if: $x) }",
        experimental_fragment_arguments=True,
    ).definitions[0]
    work = shared_work.OperationWork(operation.definitions[0], [with_variables])  # type: ignore[arg-type]
    assert work.directive_variables is None


async def test_bounds_dropped_answer_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execution, "SUB_FIELDS", 1)
    monkeypatch.setattr(shared_work, "COLLECTIONS", 1)
    for document in (SET, DIRECTED):
        plan = plan_of(document)
        assert plan is not None
        requests = [{"w": "a", "c": True}, {"w": "b", "c": False}, {"w": "a", "b": True, "c": True}]
        await assert_alike(
            plan, [{k: v for k, v in r.items() if f"${k}" in document} for r in requests]
        )
