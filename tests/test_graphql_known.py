"""Known operations (``favgate.schema.known``): a document found valid once runs without the
extensions afterwards, and answers exactly as Strawberry's whole path does.

Each test serves one database through two apps built from the same settings: one whose
schema knows no operation (every request takes the whole path) and one as deployed. The
second app sees each document twice: the first time it learns it, the second time it runs
it as a known operation. All three answers (status, body, and the metrics they count)
must be the same.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import CHAT_JID, LifespanApp, Tenants
from graphql import OperationDefinitionNode, parse
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, queries
from starlette.routing import Route
from strawberry.extensions import QueryDepthLimiter
from test_properties import SCHEMA, on_main

from favgate import metrics, resolvers
from favgate.app import create_app
from favgate.config import Settings
from favgate.schema import Schema, build_schema
from favgate.schema.known import KnownOperations, stands_in_for
from favgate.storage import Storage

SET = """
mutation Set($instance: String!, $n: String, $on: Boolean!) {
  setFavorite(instance: $instance, number: $n, favorite: $on) {
    success message chatJid messageId favorite type
  }
}
"""
PAGE = """
query Page($instance: String!, $first: Int) {
  favorites(instance: $instance, first: $first) {
    totalCount
    edges { cursor node { id type chatJid messageId favorite message { id text fromMe } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
TWO = """
query First { favorites(instance: "main") { totalCount } }
query Second { favorite(instance: "main", number: "5511999999999") { favorite } }
"""
COUNTED = (
    "favgate_graphql_operations",
    "favgate_database_errors",
    "favgate_http_requests",
    "favgate_rate_limited_requests",
)


Sample = tuple[str, frozenset[tuple[str, str]]]


def counters() -> Counter[Sample]:
    """The process's request and operation counters (the registry is shared: deltas)."""
    return Counter(
        {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in metrics.REGISTRY.collect()
            if family.name in COUNTED
            for sample in family.samples
            if sample.name.endswith("_total")
        }
    )


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: Any
    counted: dict[Sample, float]


async def ask(client: httpx.AsyncClient, token: str, payload: Any, method: str = "POST") -> Answer:
    before = counters()
    if method == "GET":
        response = await client.get("/graphql", params=payload, headers={"token": token})
    else:
        response = await client.post("/graphql", json=payload, headers={"token": token})
    after = counters()
    after.subtract(before)
    content_type = response.headers.get("content-type", "")
    body = response.json() if content_type.startswith("application/json") else response.text
    counted = {sample: delta for sample, delta in after.items() if delta}
    return Answer(response.status_code, content_type, *_in_any_order(body, counted))


def _in_any_order(body: Any, counted: dict[Sample, float]) -> tuple[Any, dict[Sample, float]]:
    """Errors of fields that run concurrently come in the order they happen to fail, in
    either path; so does the outcome counted (the first error's code) when codes differ."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return body, counted
    body = {**body, "errors": sorted(errors, key=lambda error: json.dumps(error, sort_keys=True))}
    if len({str(error.get("extensions")) for error in errors}) > 1:
        counted = {
            (name, frozenset((k, v) for k, v in labels if k != "outcome")): delta
            for (name, labels), delta in counted.items()
        }
    return body, counted


@dataclass
class Paths:
    """The same database behind the whole path alone and behind the deployed schema."""

    whole: httpx.AsyncClient
    deployed: httpx.AsyncClient
    schema: Schema
    extension_sets: int = 0  # how many times the deployed schema built its extensions
    took_known_path = False  # whether the last request asked twice built none

    async def compare(self, token: str, payload: Any, method: str = "POST") -> Answer:
        """Ask both; the deployed app twice (learning, then knowing). Returns the answer."""
        expected = await ask(self.whole, token, payload, method)
        first = await ask(self.deployed, token, payload, method)
        built = self.extension_sets
        second = await ask(self.deployed, token, payload, method)
        assert first == expected
        assert second == expected
        self.took_known_path = self.extension_sets == built
        return second

    def is_known(self, payload: Any) -> bool:
        known = self.schema.known_operations
        query = payload.get("query") if isinstance(payload, dict) else None
        return known is not None and known.get(query) is not None


def schema_of(app: Any) -> Schema:
    [route] = [r for r in app.routes if isinstance(r, Route) and r.path == "/graphql"]
    schema = route.endpoint.schema
    assert isinstance(schema, Schema)
    return schema


@asynccontextmanager
async def client_for(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app) as state:
        transport = httpx.ASGITransport(app=LifespanApp(app, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as c:
            yield c


@asynccontextmanager
async def serving_both(settings: Settings) -> AsyncIterator[Paths]:
    whole_app, deployed_app = create_app(settings), create_app(settings)
    schema_of(whole_app).known_operations = None
    schema = schema_of(deployed_app)
    assert schema.known_operations is not None
    async with client_for(whole_app) as whole, client_for(deployed_app) as deployed:
        paths = Paths(whole, deployed, schema)
        build = schema.get_extensions

        def counting(sync: bool = False) -> Any:
            paths.extension_sets += 1
            return build(sync)

        schema.get_extensions = counting  # type: ignore[method-assign]
        yield paths


@pytest.fixture
async def paths(settings: Settings, storage: Storage, tenants: Tenants) -> AsyncIterator[Paths]:
    async with serving_both(settings) as paths:
        yield paths


# --- The same answers ---------------------------------------------------------------------


def one_root_field(operation: object) -> bool:
    """Whether a query asks for one root field. Root fields of a query run concurrently,
    and when one fails whether a sibling's error still makes the answer is a matter of
    timing, in either path; mutations run one after the other."""
    [definition] = parse(str(operation)).definitions
    assert isinstance(definition, OperationDefinitionNode)
    return len(definition.selection_set.selections) == 1


operations = st.one_of(
    queries(SCHEMA, print_ast=on_main).filter(one_root_field),
    mutations(SCHEMA, print_ast=on_main),
    queries(SCHEMA).filter(one_root_field),
    queries(SCHEMA, mode=Mode.NEGATIVE),
    mutations(SCHEMA, mode=Mode.NEGATIVE),
)


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    derandomize=True,
    # One pair of apps for every example: each example's three requests see one state.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operation=operations)
async def test_generated_operations_answer_alike(
    paths: Paths, tenants: Tenants, operation: str
) -> None:
    await paths.compare(tenants.acme_token, {"query": operation})
    assert paths.took_known_path == paths.is_known({"query": operation})
    event("known path" if paths.took_known_path else "whole path")


async def test_known_operations_skip_the_extensions(paths: Paths, tenants: Tenants) -> None:
    variables = {"instance": "main", "n": "5511999999999", "on": True}
    await paths.compare(tenants.main_token, {"query": SET, "variables": variables})
    answer = await paths.compare(tenants.main_token, {"query": PAGE, "variables": variables})
    assert paths.is_known({"query": SET}) and paths.is_known({"query": PAGE})
    assert paths.took_known_path
    assert answer.body["data"]["favorites"]["edges"][0]["node"]["chatJid"] == CHAT_JID
    operations = {labels for (name, labels) in answer.counted if "graphql" in name}
    assert operations == {frozenset({("type", "query"), ("name", "Page"), ("outcome", "ok")})}


ERRORS = {
    "unknown instance": {"instance": "nowhere", "n": "5511999999999", "on": True},
    "bad number": {"instance": "main", "n": "12", "on": True},
    "no target": {"instance": "main", "on": False},
    "variable of the wrong type": {"instance": "main", "n": "5511999999999", "on": "yes"},
    "missing variable": {"instance": "main", "n": "5511999999999"},
}


@pytest.mark.parametrize("variables", ERRORS.values(), ids=ERRORS.keys())
async def test_errors_answer_alike(
    paths: Paths, tenants: Tenants, variables: dict[str, Any]
) -> None:
    await paths.compare(tenants.main_token, {"query": SET, "variables": {"instance": "main"}})
    answer = await paths.compare(tenants.main_token, {"query": SET, "variables": variables})
    assert paths.is_known({"query": SET})
    assert answer.body["errors"]


async def test_unexpected_errors_are_masked_alike(
    paths: Paths, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(resolvers, "set_favorite", broken)
    variables = {"instance": "main", "n": "5511999999999", "on": True}
    answer = await paths.compare(tenants.main_token, {"query": SET, "variables": variables})
    [error] = answer.body["errors"]
    assert error["message"] == "Unexpected error."
    assert "internal detail" not in str(answer.body)


# --- What a known document still leaves to the whole path ---------------------------------

# (payload, method, whether the known path takes it)
OTHER_REQUESTS: dict[str, tuple[dict[str, Any], str, bool]] = {
    "a mutation over GET": ({"query": SET, "variables": '{"instance": "main"}'}, "GET", False),
    "an unknown operation name": ({"query": TWO, "operationName": "Third"}, "POST", False),
    "an operation name on a one-operation document": (
        {"query": PAGE, "operationName": "Other", "variables": {"instance": "main"}},
        "POST",
        False,
    ),
    "two operations, no name": ({"query": TWO}, "POST", True),
    "the second operation": ({"query": TWO, "operationName": "Second"}, "POST", True),
    "a query over GET": ({"query": TWO, "operationName": "First"}, "GET", True),
}


@pytest.mark.parametrize(
    ("payload", "method", "known_path"), OTHER_REQUESTS.values(), ids=OTHER_REQUESTS.keys()
)
async def test_known_documents_in_other_requests(
    paths: Paths, tenants: Tenants, payload: dict[str, Any], method: str, known_path: bool
) -> None:
    # Learn the documents from requests the known path can take.
    variables = {"instance": "main", "n": "5511999999999", "on": True}
    for query in (SET, PAGE, TWO):
        await paths.compare(tenants.main_token, {"query": query, "variables": variables})
        assert paths.is_known({"query": query}) and paths.took_known_path
    await paths.compare(tenants.main_token, payload, method)
    assert paths.took_known_path == known_path


INVALID = {
    "unknown field": "{ favoritez }",
    "too many aliases": '{ favorites(instance: "main") { edges { node { message { id } } } } '
    + "".join(f"f{i}: __typename " for i in range(200))
    + "}",
    "does not parse": "{ favorites(",
    "no query": "",
}


@pytest.mark.parametrize("query", INVALID.values(), ids=INVALID.keys())
async def test_invalid_documents_are_never_known(
    paths: Paths, tenants: Tenants, query: str
) -> None:
    await paths.compare(tenants.main_token, {"query": query})
    assert not paths.is_known({"query": query}) and not paths.took_known_path


@pytest.mark.parametrize("payload", [{"query": 5}, {"query": ["{ __typename }"]}, [1, 2]])
async def test_queries_that_are_not_strings(paths: Paths, tenants: Tenants, payload: Any) -> None:
    await paths.compare(tenants.main_token, payload)


async def test_production_answers_alike(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    production = Settings.from_env({"FAVGATE_ENV": "production"})
    limits = {name: getattr(production, name) for name in ["environment", "introspection"]}
    enum_variable = (
        'query ($t: FavoriteType) { favorites(instance: "main", type: $t) { totalCount } }'
    )
    async with serving_both(settings.replace(**limits)) as paths:
        await paths.compare(tenants.main_token, {"query": enum_variable})
        assert paths.is_known({"query": enum_variable})
        answer = await paths.compare(
            tenants.main_token, {"query": enum_variable, "variables": {"t": "MESAGE"}}
        )
        assert "Did you mean" not in str(answer.body)
        await paths.compare(tenants.main_token, {"query": "{ __schema { types { name } } }"})
        assert not paths.is_known({"query": "{ __schema { types { name } } }"})


# --- The cache ----------------------------------------------------------------------------


def test_the_least_recently_used_document_goes_first() -> None:
    known = KnownOperations(size=2)
    documents = {query: parse(query) for query in ["{ a }", "{ b }", "{ c }"]}
    known.add("{ a }", documents["{ a }"])
    known.add("{ b }", documents["{ b }"])
    assert known.get("{ a }") is documents["{ a }"]  # now the most recently used
    known.add("{ c }", documents["{ c }"])
    assert [known.get(query) is not None for query in documents] == [True, False, True]
    assert len(known) == 2
    assert known.get(5) is None


def test_only_the_extensions_it_stands_in_for() -> None:
    assert build_schema().known_operations is not None
    assert stands_in_for(build_schema().extensions)
    assert not stands_in_for([*build_schema().extensions, QueryDepthLimiter])
