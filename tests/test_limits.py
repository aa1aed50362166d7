"""GraphQL abuse limits over HTTP: depth, aliases and tokens (fragments cannot hide any of
them, nor make checking them expensive), introspection, GraphiQL and suggestions in
production, and the transport rules: no mutations over GET, no batches, JSON only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from helpers import Tenants, serving

from favgate.config import Settings
from favgate.schema.limits import EMPTY_SELECTION_SET
from favgate.storage import Storage


async def graphql(
    client: httpx.AsyncClient, query: str, token: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = {"query": query, "variables": variables or {}}
    response = await client.post("/graphql", json=body, headers={"token": token})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def messages(result: dict[str, Any]) -> list[str]:
    assert result.get("data") is None, result
    return [error["message"] for error in result["errors"]]


@pytest.fixture
async def strict(settings: Settings, storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    """Limits small enough for favgate's own schema to reach them."""
    async with serving(settings.replace(max_query_depth=3, max_query_aliases=3)) as client:
        yield client


# --- Depth ---------------------------------------------------------------------------------

TOO_DEEP = "'anonymous' exceeds maximum operation depth of 3"
DEPTH_4 = {
    "plain": '{ favorites(instance: "main") { edges { node { message { text } } } } }',
    "fragment spreads": """
        { ...Root }
        fragment Root on Query { favorites(instance: "main") { ...Edges } }
        fragment Edges on FavoriteConnection { edges { node { message { text } } } }""",
    "inline fragments": """
        { ... on Query { favorites(instance: "main") {
            ... on FavoriteConnection { edges { ... { node { message { text } } } } } } } }""",
    "a chain of fragments": """
        { favorites(instance: "main") { ...A } }
        fragment A on FavoriteConnection { edges { ...B } }
        fragment B on FavoriteEdge { node { ...C } }
        fragment C on Favorite { message { text } }""",
    "one fragment, spread shallow then deep": """
        { favorite(instance: "main", number: "5511999999999") { ...Text }
          favorites(instance: "main") { edges { node { ...Text } } } }
        fragment Text on Favorite { message { text } }""",
}


@pytest.mark.parametrize("query", DEPTH_4.values(), ids=DEPTH_4.keys())
async def test_depth_is_limited_through_fragments(
    strict: httpx.AsyncClient, tenants: Tenants, query: str
) -> None:
    assert messages(await graphql(strict, query, tenants.main_token)) == [TOO_DEEP]


async def test_depth_at_the_limit_is_served(strict: httpx.AsyncClient, tenants: Tenants) -> None:
    query = '{ ...Q } fragment Q on Query { favorites(instance: "main") { edges { cursor } } }'
    result = await graphql(strict, query, tenants.main_token)
    assert result == {"data": {"favorites": {"edges": []}}}


# --- Aliases -------------------------------------------------------------------------------

TOO_MANY_ALIASES = "4 aliases found. Allowed: 3"
ALIASES_4 = {
    "plain": '{ a: favorites(instance: "main") { b: totalCount c: totalCount d: totalCount } }',
    "one fragment spread twice": """
        { favorites(instance: "main") { ...Counts ... on FavoriteConnection { ...Counts } } }
        fragment Counts on FavoriteConnection { a: totalCount b: totalCount }""",
    "inline fragments": """
        { favorites(instance: "main") {
            ... on FavoriteConnection { a: totalCount b: totalCount } ... { c: totalCount }
            ... { ... { d: totalCount } } } }""",
    "a chain of fragments": """
        { a: favorites(instance: "main") { ...B } }
        fragment B on FavoriteConnection { b: totalCount ...C }
        fragment C on FavoriteConnection { c: totalCount ...D }
        fragment D on FavoriteConnection { d: totalCount }""",
}


@pytest.mark.parametrize("query", ALIASES_4.values(), ids=ALIASES_4.keys())
async def test_aliases_are_counted_through_fragments(
    strict: httpx.AsyncClient, tenants: Tenants, query: str
) -> None:
    assert messages(await graphql(strict, query, tenants.main_token)) == [TOO_MANY_ALIASES]


async def test_aliases_at_the_limit_are_served(strict: httpx.AsyncClient, tenants: Tenants) -> None:
    query = '{ a: favorites(instance: "main") { b: totalCount c: totalCount } }'
    result = await graphql(strict, query, tenants.main_token)
    assert result == {"data": {"a": {"b": 0, "c": 0}}}


# --- Tokens, and documents built to be expensive to check ---------------------------------


def doubling_chain(length: int) -> str:
    """Fragment n spreads fragment n + 1 twice: 2**length selections once expanded."""
    fragments = "".join(
        f"fragment F{i} on FavoriteConnection {{ ...F{i + 1} ...F{i + 1} }}\n"
        for i in range(length)
    )
    last = f"fragment F{length} on FavoriteConnection {{ totalCount }}\n"
    return '{ favorites(instance: "main") { ...F0 } }\n' + fragments + last


def nesting_chain(length: int, levels: int) -> str:
    """Each fragment nests the next inside ``levels`` inline fragments: nesting without
    depth, in more levels than the parser allows one definition."""
    opening, closing = "... { " * levels, "} " * levels
    fragments = "".join(
        f"fragment F{i} on FavoriteConnection {{ {opening}...F{i + 1} {closing}}}\n"
        for i in range(length)
    )
    last = f"fragment F{length} on FavoriteConnection {{ totalCount }}\n"
    return '{ favorites(instance: "main") { ...F0 } }\n' + fragments + last


EXPENSIVE = {
    # Strawberry's limiters alone walk 2**30 spreads here: hours of CPU.
    "fragments doubling 30 times": (
        doubling_chain(30),
        ["The document expands to more than 2000 selections."],
    ),
    # ... and here recurse past the interpreter's stack (an unmasked RecursionError).
    "fragments nesting 570 levels": (
        nesting_chain(3, 190),
        # graphql-core's own rules give up on it too.
        ["The document nests more than 200 levels deep.", "Validation aborted."],
    ),
    "2001 tokens": (
        '{ favorites(instance: "main") { totalCount' + " __typename" * 1995 + " } }",
        ["Syntax Error: Document contains more than 2000 tokens. Parsing aborted."],
    ),
    # Strawberry's depth limiter raises on both of these (a leaked internal error).
    "an empty selection set": ('{ favorites(instance: "main") { } }', [EMPTY_SELECTION_SET]),
    "an unknown fragment": (
        '{ favorites(instance: "main") { ...Nope } }',
        ["Unknown fragment 'Nope'."],
    ),
    "a cycle of fragments": (
        '{ favorites(instance: "main") { ...A } }\n'
        "fragment A on FavoriteConnection { ...B }\n"
        "fragment B on FavoriteConnection { ...A }",
        ["Cannot spread fragment 'A' within itself via 'B'."],
    ),
    "deep introspection": (
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
        ["Maximum introspection depth exceeded"],
    ),
}


@pytest.mark.parametrize(("query", "expected"), EXPENSIVE.values(), ids=EXPENSIVE.keys())
async def test_documents_built_to_be_expensive_are_refused(
    client: httpx.AsyncClient, tenants: Tenants, query: str, expected: list[str]
) -> None:
    assert messages(await graphql(client, query, tenants.main_token)) == expected


async def test_fragments_spread_again_and_again_are_fine_when_small(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    result = await graphql(client, doubling_chain(8), tenants.main_token)  # 256 selections
    assert result == {"data": {"favorites": {"totalCount": 0}}}


# --- Production: no introspection, no GraphiQL, no suggestions ----------------------------


@pytest.fixture
async def production(settings: Settings, storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    production = Settings.from_env({"FAVGATE_ENV": "production"})
    async with serving(settings.replace(**_limits_of(production))) as client:
        yield client


def _limits_of(settings: Settings) -> dict[str, Any]:
    names = ["environment", "introspection", "graphiql"]
    return {name: getattr(settings, name) for name in names}


INTROSPECTION_OFF = "GraphQL introspection has been disabled, but the requested query contained"


@pytest.mark.parametrize(
    "query", ["{ __schema { queryType { name } } }", '{ __type(name: "Query") { name } }']
)
async def test_production_refuses_introspection(
    production: httpx.AsyncClient, tenants: Tenants, query: str
) -> None:
    [message, *_] = messages(await graphql(production, query, tenants.main_token))
    assert message.startswith(INTROSPECTION_OFF)


async def test_production_still_answers_typename(
    production: httpx.AsyncClient, tenants: Tenants
) -> None:
    result = await graphql(production, "{ __typename }", tenants.main_token)
    assert result == {"data": {"__typename": "Query"}}


async def test_introspection_can_be_enabled_in_production(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    enabled = Settings.from_env({"FAVGATE_ENV": "production", "FAVGATE_INTROSPECTION": "true"})
    async with serving(settings.replace(**_limits_of(enabled))) as client:
        result = await graphql(client, "{ __schema { queryType { name } } }", tenants.main_token)
    assert result == {"data": {"__schema": {"queryType": {"name": "Query"}}}}


async def test_production_serves_no_graphiql(production: httpx.AsyncClient) -> None:
    response = await production.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 401  # a GraphQL request without a token, not a page
    assert response.headers["content-type"] == "application/json"
    assert "graphiql" not in response.text.lower()


MISTAKES = {
    "field": ("{ favoritez }", {}),
    "argument": ('{ favorites(instanse: "main") { totalCount } }', {}),
    "enum literal": ('{ favorites(instance: "main", type: CHATS) { totalCount } }', {}),
    "enum variable": (
        'query ($t: FavoriteType) { favorites(instance: "main", type: $t) { totalCount } }',
        {"t": "MESAGE"},
    ),
    "type": ("query ($t: FavoriteTyp) { __typename }", {}),
}


@pytest.mark.parametrize(("query", "variables"), MISTAKES.values(), ids=MISTAKES.keys())
async def test_suggestions_in_development_only(
    client: httpx.AsyncClient,
    production: httpx.AsyncClient,
    tenants: Tenants,
    query: str,
    variables: dict[str, Any],
) -> None:
    development = messages(await graphql(client, query, tenants.main_token, variables))
    assert any("Did you mean" in message for message in development)
    hidden = messages(await graphql(production, query, tenants.main_token, variables))
    assert len(hidden) == len(development)
    assert not any("Did you mean" in message for message in hidden)
    # The same errors, less the suggestion.
    for shown, plain in zip(development, hidden, strict=True):
        assert shown.startswith(plain.rstrip("."))


def test_limits_are_read_from_the_environment() -> None:
    env = {
        "FAVGATE_MAX_QUERY_DEPTH": "4",
        "FAVGATE_MAX_QUERY_ALIASES": "5",
        "FAVGATE_MAX_QUERY_TOKENS": "600",
        "FAVGATE_MAX_BODY_BYTES": "1024",
    }
    settings = Settings.from_env(env)
    assert (settings.max_query_depth, settings.max_query_aliases) == (4, 5)
    assert (settings.max_query_tokens, settings.max_body_bytes) == (600, 1024)
    assert Settings.from_env({}).introspection is True
    assert Settings.from_env({"FAVGATE_ENV": "production"}).introspection is False
    assert Settings.from_env({"FAVGATE_INTROSPECTION": "false"}).introspection is False


# --- GraphQL over HTTP --------------------------------------------------------------------

SET_FAVORITE = (
    'mutation { setFavorite(instance: "main", number: "5511999999999", favorite: true) '
    "{ success } }"
)


async def test_mutations_are_refused_over_get(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    headers = {"token": tenants.main_token}
    response = await client.get("/graphql", params={"query": SET_FAVORITE}, headers=headers)
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert response.json() == {
        "errors": [
            {
                "message": "Mutations are served over POST only",
                "extensions": {"code": "METHOD_NOT_ALLOWED"},
            }
        ]
    }
    assert await storage._database["favorites"].count_documents({}) == 0


async def test_queries_are_served_over_get(client: httpx.AsyncClient, tenants: Tenants) -> None:
    query = '{ favorites(instance: "main") { totalCount } }'
    headers = {"token": tenants.main_token}
    response = await client.get("/graphql", params={"query": query}, headers=headers)
    assert response.json() == {"data": {"favorites": {"totalCount": 0}}}


async def test_batches_are_refused(client: httpx.AsyncClient, tenants: Tenants) -> None:
    batch = [{"query": "{ __typename }"}, {"query": "{ __typename }"}]
    response = await client.post("/graphql", json=batch, headers={"token": tenants.main_token})
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "Invalid GraphQL request: batched requests are not supported",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }
