"""An operation's plan (``favgate.schema.plan``) builds what graphql-core's path builds.

For each request the transport used to call the executor class's ``build`` and
``favgate.schema.cost.operation_cost``; a plan builds the executor from the document's work
done once, where the variables allow. Both paths take the same drawn variables (valid,
missing, null, of the wrong type, nested, unknown) over documents of favgate's schema; the
executors they build (or the errors they answer), the costs, and the answers of the
documents that run without a database must be equal.
"""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError
from hypothesis import event, given, settings
from hypothesis import strategies as st
from strawberry.execution.is_awaitable import optimized_is_awaitable

from favgate.config import Settings
from favgate.graphql_http import GraphQLTransport
from favgate.persisted import PersistedDocuments
from favgate.schema import build_schema
from favgate.schema.cost import operation_cost
from favgate.schema.execution import PlainFieldsExecutionContext
from favgate.schema.limits import SuggestionFreeExecutionContext
from favgate.schema.plan import Plan

SET = (
    'mutation Set($n: String!) { setFavorite(instance: "bench", number: $n, favorite: true) '
    "{ success message chatJid messageId favorite type } }"
)
DOCUMENTS = {
    "set": SET,
    "mutation": "mutation M($i: String!, $n: String, $m: String, $f: Boolean! = true) "
    "{ setFavorite(instance: $i, number: $n, messageId: $m, favorite: $f) { success } }",
    "batch": 'mutation B($items: [FavoriteInput!]!, $i: String = "x") '
    "{ setFavorites(instance: $i, items: $items) { success } "
    'two: setFavorites(instance: "y", items: [{favorite: true}, {favorite: false}]) '
    '{ success } ...More } fragment More on Mutation { removeWebhook(id: "w") }',
    "page": "query P($t: FavoriteType, $first: Int = 20, $after: String, $c: String) "
    '{ favorites(instance: "x", type: $t, first: $first, after: $after, chatJid: $c) '
    "{ totalCount } }",
    "node": "query N($id: ID!) { node(id: $id) { id } }",
    # Runs without a database: its answers are compared too.
    "introspects": "query I($b: Boolean!, $name: String!, $s: Boolean = true) "
    "{ __typename @include(if: $b) t: __type(name: $name) { name kind } ...F } "
    "fragment F on Query { s: __typename @skip(if: $s) }",
}
NAMES = ["n", "i", "m", "f", "items", "t", "first", "after", "c", "id", "b", "name", "s", "x"]
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.sampled_from(["5511999", "CHAT", "MESSAGE", "Query", "FavoriteResult", "RGF2b3JpdGU="])
)
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["number", "messageId", "favorite", "x"]), children)
    ),
    max_leaves=8,
)
# Values of each variable's type, so that many requests take the plan's way.
FITTING = {
    "n": st.none() | st.text(max_size=4),
    "i": st.text(max_size=4),
    "m": st.none() | st.text(max_size=4),
    "f": st.booleans(),
    "items": st.lists(
        st.fixed_dictionaries(
            {"favorite": st.booleans()},
            optional={"number": st.none() | st.text(max_size=3), "messageId": st.none()},
        ),
        max_size=3,
    ),
    "t": st.sampled_from(["CHAT", "MESSAGE", None]),
    "first": st.none() | st.integers(-(2**31), 2**31 - 1),
    "after": st.none() | st.text(max_size=4),
    "c": st.none() | st.text(max_size=4),
    "id": st.text(max_size=4) | st.integers(),
    "b": st.booleans(),
    "name": st.sampled_from(["Query", "FavoriteResult", "Nothing"]),
    "s": st.none() | st.booleans(),
}
VARIABLES = st.one_of(
    st.fixed_dictionaries({}, optional=FITTING),
    st.fixed_dictionaries({}, optional={name: fits | VALUES for name, fits in FITTING.items()}),
    st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=6),
)
CLASSES = [PlainFieldsExecutionContext, SuggestionFreeExecutionContext]
transport = GraphQLTransport(
    build_schema(Settings()), Settings(), PersistedDocuments()
)  # development: introspection on, suggestions shown (the classes decide them below)
CONTEXT = object()


def plan_of(document: str) -> Plan:
    checked = transport.check(document)
    assert checked.document is not None and not checked.errors, checked.errors
    return transport.plan(checked, None)


def plain(plan: Plan, executor_class: Any, variables: dict[str, Any]) -> Any:
    """What the transport built before plans: the executor class's own ``build``."""
    return executor_class.build(
        plan.schema,
        plan.document,
        context_value=CONTEXT,
        raw_variable_values=variables,
        operation_name=plan.name,
        is_awaitable=optimized_is_awaitable,
        hide_suggestions=executor_class is SuggestionFreeExecutionContext,
    )


def planned(plan: Plan, executor_class: Any, variables: dict[str, Any]) -> Any:
    hide = executor_class is SuggestionFreeExecutionContext
    return plan.executor(executor_class, CONTEXT, variables, hide)


def described(built: Any) -> Any:
    """An executor's state, or its errors, in comparable terms."""
    if isinstance(built, list):
        return [error.formatted for error in built]
    sources = {
        name: (signature.name, str(signature.type), signature.default, value)
        for name, (signature, value) in built.variable_values.sources.items()
    }
    state = {k: v for k, v in vars(built).items() if k not in FRESH_PER_EXECUTOR}
    return type(built), sources, built.variable_values.coerced, state


# Made anew by every executor, whichever way it is built: not the request's.
FRESH_PER_EXECUTOR = {
    "variable_values",  # compared above, its types named
    "async_helpers",
    "collected_errors",
    "pending_incremental_futures",
    "background_futures",
    "_relevant_sub_fields",
    "_stream_usages",
    "_initial_execution_plans",
    "_deferred_execution_plans",
    "_plans",
}


async def answer(built: Any) -> Any:
    result = built.execute_operation()
    if not hasattr(result, "data"):
        result = await result
    return result.data, [error.formatted for error in result.errors or []]


async def assert_alike(document: str, executor_class: Any, variables: dict[str, Any]) -> bool:
    """Both paths alike; whether the variables took the plan's way."""
    plan = plan_of(document)
    expected, got = plain(plan, executor_class, variables), planned(plan, executor_class, variables)
    assert described(got) == described(expected)
    if isinstance(expected, list):
        assert all(isinstance(error, GraphQLError) for error in expected)
        return False
    coerced = expected.variable_values.coerced
    assert plan.cost(coerced) == operation_cost(plan.operation, plan.fragments, coerced)
    if plan.root_names <= {"__typename", "__type"}:
        assert await answer(got) == await answer(expected)
    return plan.coerce(variables) is not None


@settings(max_examples=500, deadline=None, database=None, derandomize=True)
@given(
    name=st.sampled_from(sorted(DOCUMENTS)),
    executor_class=st.sampled_from(CLASSES),
    variables=VARIABLES,
)
@pytest.mark.slow
async def test_plans_build_what_graphql_core_builds(
    name: str, executor_class: Any, variables: dict[str, Any]
) -> None:
    fast = await assert_alike(DOCUMENTS[name], executor_class, variables)
    event("the plan's way" if fast else "graphql-core's build")


GIVEN = [
    ("set", {"n": "5511999"}),
    ("set", {"n": "5511999", "unknown": [1, 2]}),
    ("mutation", {"i": "bench", "n": None, "m": "MSG1", "f": False}),
    ("batch", {"items": [{"number": "1", "favorite": True}, {"favorite": False}], "i": "z"}),
    ("batch", {"items": {"favorite": True}, "i": None}),  # a list of one
    ("page", {"t": "CHAT", "first": 5, "after": None, "c": "j"}),
    ("page", {"t": None, "first": None, "after": "a", "c": None}),
    ("node", {"id": "RGF2b3JpdGU="}),
    ("introspects", {"b": True, "name": "FavoriteResult", "s": False}),
]
FALLBACK = [
    ("set", {}),  # missing
    ("set", {"n": None}),  # null for a non-null type
    ("set", {"n": 5}),  # wrong type
    ("mutation", {"i": "bench"}),  # $f left to its default
    ("page", {}),  # $first left to its default
    ("batch", {"items": [{"number": 1, "favorite": True}]}),
    ("batch", {"items": [{"favorite": True, "unknown": 1}], "i": "z"}),
    ("page", {"t": "NEITHER"}),
    ("page", {"first": 2**40}),
    ("introspects", {"b": "yes", "name": "Query", "s": True}),
]


@pytest.mark.parametrize("executor_class", CLASSES)
@pytest.mark.parametrize(("name", "variables"), GIVEN)
async def test_variables_that_fit_take_the_plan(
    name: str, variables: dict[str, Any], executor_class: Any
) -> None:
    assert await assert_alike(DOCUMENTS[name], executor_class, variables)


@pytest.mark.parametrize("executor_class", CLASSES)
@pytest.mark.parametrize(("name", "variables"), FALLBACK)
async def test_other_variables_take_graphql_cores_build(
    name: str, variables: dict[str, Any], executor_class: Any
) -> None:
    assert not await assert_alike(DOCUMENTS[name], executor_class, variables)


async def test_variables_nested_too_deeply_are_refused_alike() -> None:
    deep: Any = {"favorite": True}
    for _ in range(300):
        deep = [deep]
    plan = plan_of(DOCUMENTS["batch"])
    assert plan.coerce({"items": deep}) is None
    built = plain(plan, PlainFieldsExecutionContext, {"items": deep})
    assert isinstance(built, list)
    assert not await assert_alike(DOCUMENTS["batch"], PlainFieldsExecutionContext, {"items": deep})


def test_a_plan_is_made_once_per_operation() -> None:
    checked = transport.check(SET)
    assert transport.plan(checked, None) is transport.plan(checked, None)
    assert transport.plan(checked, "Set") is not transport.plan(checked, None)
    assert set(checked.plans) == {None, "Set"}


def test_costs_fixed_or_decided_by_variables() -> None:
    assert plan_of(SET).fixed_cost == 1
    assert plan_of(DOCUMENTS["introspects"]).fixed_cost == 3  # a root field 1 each
    batch = plan_of(DOCUMENTS["batch"])
    assert batch.fixed_cost is None
    assert batch.cost({"items": [{}, {}, {}]}) == 3 + 2 + 1
    assert batch.cost({}) == 1 + 2 + 1
