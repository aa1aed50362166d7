"""GraphQL over HTTP at /graphql: cost charged before work, identity before parsing, every
refusal a coded GraphQL error, the spec's media types and status codes, persisted documents.

Over the ASGI app with one driver: nothing here depends on which one runs.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse, print_ast
from helpers import CHAT_JID, MESSAGE_ID, LifespanApp, Tenants, serving
from starlette.routing import Route

from favgate.app import create_app
from favgate.config import Settings
from favgate.storage import Storage

GRAPHQL_RESPONSE = "application/graphql-response+json"
SET = 'setFavorite(instance: "main", number: "%s", favorite: true) { success }'


def number(i: int) -> str:
    return f"55119999{i:05d}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def post(
    client: httpx.AsyncClient,
    body: Any,
    token: str | None,
    accept: str | None = None,
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["token"] = token
    if accept is not None:
        headers["accept"] = accept
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post("/graphql", content=content, headers=headers)


def code_of(response: httpx.Response) -> str:
    body = response.json()
    assert "data" not in body, body
    [error] = body["errors"]
    code: str = error["extensions"]["code"]
    return code


async def stored(storage: Storage) -> int:
    return int(await storage._database["favorites"].count_documents({}))


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


@pytest.fixture
async def limited(settings: Settings, storage: Storage) -> Any:
    async with serving(settings.replace(rate_limit=20)) as client:
        yield client


# --- Cost charged before work, all or nothing ------------------------------------------


async def test_aliases_are_charged_each(
    limited: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    fields = " ".join(f"a{i}: {SET % number(i)}" for i in range(15))
    response = await post(limited, {"query": f"mutation {{ {fields} }}"}, tenants.acme_token)
    assert response.status_code == 200, response.text
    assert remaining(response) == 20 - 15
    assert await stored(storage) == 15
    # Six more aliases do not fit in the 5 left: refused whole, nothing written or charged.
    fields = " ".join(f"b{i}: {SET % number(100 + i)}" for i in range(6))
    response = await post(limited, {"query": f"mutation {{ {fields} }}"}, tenants.acme_token)
    assert response.status_code == 429
    assert code_of(response) == "RATE_LIMITED"
    assert int(response.headers["retry-after"]) >= 1
    assert remaining(response) == 5
    assert await stored(storage) == 15


async def test_fragments_at_the_root_are_charged_as_their_fields(
    limited: httpx.AsyncClient, tenants: Tenants
) -> None:
    query = (
        "query { ...F ...F ... on Query { __typename } } "
        'fragment F on Query { favorites(instance: "main") { totalCount } __typename }'
    )
    response = await post(limited, {"query": query}, tenants.acme_token)
    assert response.status_code == 200, response.text
    assert remaining(response) == 20 - 5


async def test_a_batch_over_the_budget_is_refused_whole(
    limited: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    items = [{"number": number(i), "favorite": True} for i in range(12)]
    query = (
        "mutation($a: [FavoriteInput!]!, $b: [FavoriteInput!]!) {"
        ' one: setFavorites(instance: "main", items: $a) { success }'
        ' two: setFavorites(instance: "main", items: $b) { success } }'
    )
    response = await post(
        limited, {"query": query, "variables": {"a": items, "b": items}}, tenants.acme_token
    )
    # 24 units against a budget of 20: more than a whole budget, refused up front.
    assert response.status_code == 400
    assert code_of(response) == "COST_EXCEEDS_BUDGET"
    assert "24 units" in response.json()["errors"][0]["message"]
    assert await stored(storage) == 0

    response = await post(
        limited, {"query": query, "variables": {"a": items[:8], "b": items[:8]}}, tenants.acme_token
    )
    assert response.status_code == 200, response.text
    assert remaining(response) == 20 - 1 - 16  # the refusal above cost 1
    # 3 left: a batch of 4 literal items does not fit. 429, nothing written.
    literal = ", ".join(f'{{number: "{number(50 + i)}", favorite: true}}' for i in range(4))
    query = f'mutation {{ setFavorites(instance: "main", items: [{literal}]) {{ success }} }}'
    response = await post(limited, {"query": query}, tenants.acme_token)
    assert response.status_code == 429
    assert code_of(response) == "RATE_LIMITED"
    assert await stored(storage) == 8


# --- No work without identity ----------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "{ __typename }",
        '{ favorites(instance: "main") { totalCount } }',
        "{ __schema { queryType { name } } }",
        "query { ...A } fragment A on Query { __typename }",
        "{ not valid",
    ],
)
async def test_without_a_token_nothing_runs_in_production(
    settings: Settings, storage: Storage, query: str
) -> None:
    production = settings.replace(environment="production", introspection=False, graphiql=False)
    async with serving(production) as client:
        response = await post(client, {"query": query}, None)
        assert response.status_code == 401
        assert code_of(response) == "UNAUTHENTICATED"
        assert "x-ratelimit-remaining" not in response.headers


async def test_without_a_token_only_introspection_runs_and_is_charged(
    limited: httpx.AsyncClient,
) -> None:
    response = await post(limited, {"query": "{ __schema { queryType { name } } }"}, None)
    assert response.status_code == 200
    assert response.json() == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    assert remaining(response) == 19  # the client address's budget
    for query in ["{ __typename }", '{ favorites(instance: "main") { totalCount } }']:
        response = await post(limited, {"query": query}, None)
        assert response.status_code == 401
        assert code_of(response) == "UNAUTHENTICATED"
    assert remaining(response) == 17  # parsed, so paid for


# --- Every bad input: 4xx, a coded GraphQL error, nothing internal, no traceback ---------


BAD_BODIES: list[tuple[bytes, str]] = [
    (b"1", "the body must be a JSON object"),
    (b'"x"', "the body must be a JSON object"),
    (b"null", "the body must be a JSON object"),
    (b"true", "the body must be a JSON object"),
    (b"[]", "batched requests are not supported"),
    (b'[{"query": "{ __typename }"}]', "batched requests are not supported"),
    (b"{", "the body is not valid JSON"),
    (b'{"query": "{ __typename }", "variables": ' + b"[" * 3000 + b"]" * 3000 + b"}", "JSON"),
    (b'{"query": "\\ud800"}', "the body is not valid JSON"),
    (b'{"query": 5}', "query must be a string"),
    (b'{"query": "{ __typename }", "operationName": 5}', "operationName must be a string"),
    (b'{"query": "{ __typename }", "operationName": true}', "operationName must be a string"),
    (b'{"query": "{ __typename }", "operationName": ["a"]}', "operationName must be a string"),
    (b'{"query": "{ __typename }", "operationName": {}}', "operationName must be a string"),
    (b'{"query": "{ __typename }", "variables": []}', "variables must be an object"),
    (b'{"query": "{ __typename }", "variables": "x"}', "variables must be an object"),
    (b'{"query": "{ __typename }", "extensions": 1}', "extensions must be an object"),
    (b"{}", "query is required"),
]


@pytest.mark.parametrize("accept", [None, GRAPHQL_RESPONSE])
@pytest.mark.parametrize(("body", "reason"), BAD_BODIES, ids=range(len(BAD_BODIES)))
async def test_bad_bodies_are_400_graphql_errors(
    client: httpx.AsyncClient, tenants: Tenants, body: bytes, reason: str, accept: str | None
) -> None:
    response = await post(client, body, tenants.acme_token, accept=accept)
    assert response.status_code == 400
    assert response.headers["content-type"] == (accept or "application/json")
    assert code_of(response) == "BAD_REQUEST"
    message = response.json()["errors"][0]["message"]
    assert message.startswith("Invalid GraphQL request: ") and reason in message


async def test_variables_nested_past_the_limit(client: httpx.AsyncClient, tenants: Tenants) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    body = {"query": "query($n: String) { __typename }", "variables": {"n": deep}}
    response = await post(client, body, tenants.acme_token)
    assert response.status_code == 400
    assert "variables nest more than 32 levels" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [
        # A GraphQL escape of a lone surrogate, in the document and in a variable's JSON.
        {
            "query": 'mutation { setFavorite(instance: "main", number: "\\ud800", favorite: true) '
            "{ success } }"
        },
    ],
)
async def test_lone_surrogates_in_documents(
    client: httpx.AsyncClient, tenants: Tenants, body: Any
) -> None:
    response = await post(client, body, tenants.acme_token, accept=GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert code_of(response) == "GRAPHQL_PARSE_FAILED"


async def test_lone_surrogate_in_a_variable(client: httpx.AsyncClient, tenants: Tenants) -> None:
    raw = (
        b'{"query": "mutation($n: String) { setFavorite(instance: \\"main\\", number: $n, '
        b'favorite: true) { success } }", "variables": {"n": "\\ud800"}}'
    )
    response = await post(client, raw, tenants.acme_token)
    assert response.status_code == 400
    assert code_of(response) == "BAD_REQUEST"


async def test_a_subscription_over_http_is_refused_without_a_stream(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    query = 'subscription { favoriteChanged(instance: "main") { favorite } }'
    response = await post(client, {"query": query}, tenants.acme_token)
    assert response.status_code == 400
    assert code_of(response) == "BAD_REQUEST"
    assert "WebSocket" in response.json()["errors"][0]["message"]
    assert storage.changes._pump is None  # no change stream was opened


async def test_each_request_runs_the_operation_it_names(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    """One document, several operations: each request runs the one it names, however
    often the document was seen (its operations are planned once, favgate.schema.plan)."""
    document = (
        "query A { a: __typename } "
        "query B($s: Boolean!) { b: __typename @skip(if: $s) ...F } "
        "fragment F on Query { f: __typename }"
    )
    expected = [
        ({"operationName": "A"}, {"a": "Query"}),
        ({"operationName": "B", "variables": {"s": False}}, {"b": "Query", "f": "Query"}),
        ({"operationName": "B", "variables": {"s": True}}, {"f": "Query"}),
        ({"operationName": "A", "variables": {"s": True}}, {"a": "Query"}),
    ]
    for _ in range(2):
        for params, data in expected:
            response = await post(client, {"query": document, **params}, tenants.acme_token)
            assert response.json() == {"data": data}
        for name, message in [(None, "several operations"), ("C", "no operation of that name")]:
            response = await post(
                client, {"query": document, "operationName": name}, tenants.acme_token
            )
            assert code_of(response) == "OPERATION_RESOLUTION_FAILURE"
            assert message in response.json()["errors"][0]["message"]
        response = await post(client, {"query": document, "operationName": "B"}, tenants.acme_token)
        assert code_of(response) == "BAD_USER_INPUT"  # $s is required


async def test_the_plans_of_one_document_keep_its_fragments_once(
    client: httpx.AsyncClient,
) -> None:
    """Each operation a request names is planned and kept with its document, for as long
    as the document is cached (256 texts): a plan must not keep its own copy of what the
    whole document shares, its fragments read for execution. Else a document of many
    operations and fragments, each operation named once (here without a token, as
    introspection-only requests may in development), keeps several times its own size."""
    count = 150
    fragments = " ".join(f"fragment f{i} on Query {{ __typename }}" for i in range(80))
    spreads = " ".join(f"...f{i}" for i in range(80))
    operations = " ".join(f"query o{i} {{ __schema {{ __typename }} }}" for i in range(count))
    text = f"query z {{ __schema {{ __typename }} {spreads} }} {operations} {fragments}"
    response = await post(client, {"query": text, "operationName": "z"}, None)
    assert response.status_code == 200, response.text  # parsed, validated, cached
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            response = await post(client, {"query": text, "operationName": f"o{i}"}, None)
            assert response.json() == {"data": {"__schema": {"__typename": "__Schema"}}}
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A plan is a few hundred bytes; a copy of 80 fragments' details, several KiB.
    assert kept < count * 2048, f"{kept / count:.0f} bytes kept per operation planned"


@pytest.mark.slow
async def test_client_errors_leave_no_traceback_and_little_log(
    client: httpx.AsyncClient, tenants: Tenants, caplog: pytest.LogCaptureFixture
) -> None:
    hostile = [body for body, _ in BAD_BODIES] + [
        b'{"query": "{ __typename }", "operationName": "nope"}',
        b'{"query": "{ nope }"}',
        b'{"query": "query($b: Boolean!) { __typename @skip(if: $b) }", "variables": {"b": 1}}',
        b'{"query": "subscription { favoriteChanged(instance: \\"main\\") { favorite } }"}',
    ]
    with caplog.at_level(logging.DEBUG):
        for body in hostile:
            for _ in range(100):
                response = await post(client, body, tenants.acme_token)
                assert 400 <= response.status_code < 500 or response.status_code == 200
                assert "errors" in response.json()
    assert not [r for r in caplog.records if r.exc_info], "a client's error logged a traceback"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- GraphQL over HTTP: media types, status codes, methods ------------------------------


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0", "application/json"),
    ],
)
async def test_media_type_follows_accept(
    client: httpx.AsyncClient, tenants: Tenants, accept: str | None, media: str
) -> None:
    response = await post(client, {"query": "{ __typename }"}, tenants.acme_token, accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == media
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ __typename", None, "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($b: Boolean!) { __typename @include(if: $b) }", {"b": "yes"}, "BAD_USER_INPUT"),
    ],
)
async def test_request_errors_by_media_type(
    client: httpx.AsyncClient,
    tenants: Tenants,
    query: str,
    variables: dict[str, Any] | None,
    code: str,
) -> None:
    body = {"query": query, "variables": variables}
    as_json = await post(client, body, tenants.acme_token, "application/json")
    assert as_json.status_code == 200
    assert {e["extensions"]["code"] for e in as_json.json()["errors"]} == {code}
    assert "data" not in as_json.json()
    as_graphql = await post(client, body, tenants.acme_token, GRAPHQL_RESPONSE)
    assert as_graphql.status_code == 400
    assert as_graphql.json() == as_json.json()


async def test_operation_name_must_name_an_operation(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    body = {"query": "query A { __typename } query B { __typename }"}
    response = await post(client, body, tenants.acme_token, GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert code_of(response) == "OPERATION_RESOLUTION_FAILURE"
    response = await post(client, {**body, "operationName": "C"}, tenants.acme_token)
    assert code_of(response) == "OPERATION_RESOLUTION_FAILURE"
    response = await post(client, {**body, "operationName": "B"}, tenants.acme_token)
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_get_runs_queries_and_refuses_mutations(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    headers = {"token": tenants.acme_token}
    response = await client.get("/graphql", params={"query": "{ __typename }"}, headers=headers)
    assert response.json() == {"data": {"__typename": "Query"}}
    mutation = "mutation { " + SET % number(1) + " }"
    response = await client.get("/graphql", params={"query": mutation}, headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert code_of(response) == "METHOD_NOT_ALLOWED"
    assert await stored(storage) == 0


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_in_graphql_shape(
    client: httpx.AsyncClient, tenants: Tenants, method: str
) -> None:
    response = await client.request(method, "/graphql", headers={"token": tenants.acme_token})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert code_of(response) == "METHOD_NOT_ALLOWED"


async def test_an_outage_before_anything_ran_is_503(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    """The REST error shape never appears on /graphql, even for the transport's own
    refusals (413 and 415 are covered in test_hostile)."""
    async with serving(settings) as client:
        response = await client.post(
            "/graphql",
            content=b"x" * 70_000,
            headers={"content-type": "application/json", "token": tenants.acme_token},
        )
        assert response.status_code == 413
        assert code_of(response) == "PAYLOAD_TOO_LARGE"


# --- Trailing slashes and metrics ------------------------------------------------------


async def test_a_trailing_slash_is_not_redirected_nor_charged(
    limited: httpx.AsyncClient, tenants: Tenants
) -> None:
    response = await limited.post(
        "/api/chat/favorite/main/",
        json={"number": CHAT_JID, "favorite": True},
        headers={"token": tenants.acme_token, "host": "evil.example"},
    )
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json() == {"success": False, "error": {"message": "Not Found"}}
    ok = await limited.post(
        "/api/chat/favorite/main",
        json={"messageId": MESSAGE_ID, "favorite": True},
        headers={"token": tenants.acme_token},
    )
    assert remaining(ok) == 19


async def test_operation_names_label_metrics_only_when_authenticated(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    for i in range(5):
        await post(client, {"query": f"query Junk{i}x {{ __schema {{ description }} }}"}, None)
    await post(client, {"query": "query Known7 { __typename }"}, tenants.acme_token)
    metrics = (await client.get("/metrics")).text
    assert "Junk0x" not in metrics
    assert 'name="Known7"' in metrics


# --- Persisted documents ---------------------------------------------------------------


QUERY = '{ favorites(instance: "main") { totalCount } }'


def persisted(text: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(text)}}


async def test_automatic_persisted_queries(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.acme_token
    response = await post(client, {"extensions": persisted(QUERY)}, token)
    assert response.status_code == 200  # application/json: Apollo's link reads the body
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"
    response = await post(client, {"extensions": persisted(QUERY)}, token, GRAPHQL_RESPONSE)
    assert response.status_code == 404
    response = await post(client, {"query": QUERY, "extensions": persisted(QUERY)}, token)
    assert response.json() == {"data": {"favorites": {"totalCount": 0}}}
    # Registered: hash-only by POST and by GET, here and on any replica (the database).
    response = await post(client, {"extensions": persisted(QUERY)}, token)
    assert response.json() == {"data": {"favorites": {"totalCount": 0}}}
    response = await client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted(QUERY))},
        headers={"token": token},
    )
    assert response.json() == {"data": {"favorites": {"totalCount": 0}}}
    assert await storage.documents.get(f"acme:{sha256(QUERY)}") == print_ast(parse(QUERY))


async def test_a_hash_must_match_its_document(client: httpx.AsyncClient, tenants: Tenants) -> None:
    body = {"query": "{ __typename }", "extensions": persisted(QUERY)}
    response = await post(client, body, tenants.acme_token)
    assert response.status_code == 400
    assert code_of(response) == "PERSISTED_QUERY_HASH_MISMATCH"
    bad = {"persistedQuery": {"version": 2, "sha256Hash": sha256(QUERY)}}
    response = await post(client, {"extensions": bad}, tenants.acme_token)
    assert (response.status_code, code_of(response)) == (400, "BAD_REQUEST")


async def test_invalid_documents_are_never_registered(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    text = "{ nope }"
    await post(client, {"query": text, "extensions": persisted(text)}, tenants.acme_token)
    assert await storage._database["persisted_documents"].count_documents({}) == 0


async def test_trusted_documents_only(
    settings: Settings, storage: Storage, tenants: Tenants, tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({sha256(QUERY): QUERY}))
    async with serving(settings.replace(trusted_documents=manifest)) as client:
        token = tenants.acme_token
        by_hash = await post(client, {"extensions": persisted(QUERY)}, token)
        assert by_hash.json() == {"data": {"favorites": {"totalCount": 0}}}
        by_text = await post(client, {"query": QUERY}, token)
        assert by_text.json() == by_hash.json()
        other = "{ __typename }"
        response = await post(client, {"query": other}, token)
        assert (response.status_code, code_of(response)) == (403, "PERSISTED_QUERY_NOT_ALLOWED")
        response = await post(client, {"query": other, "extensions": persisted(other)}, token)
        assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"
        assert await storage._database["persisted_documents"].count_documents({}) == 0


# --- Found by attacking the transport -----------------------------------------------------


async def test_a_client_over_its_budget_gets_no_work_done(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    application = create_app(settings.replace(rate_limit=1))
    [transport] = [
        r.app for r in application.routes if isinstance(r, Route) and r.path == "/graphql"
    ]
    async with application.router.lifespan_context(application) as state:
        asgi = httpx.ASGITransport(app=LifespanApp(application, dict(state or {})))
        async with httpx.AsyncClient(transport=asgi, base_url="http://favgate.test") as client:
            assert (await post(client, {"query": "{ __typename }"}, tenants.acme_token)).is_success
            known = len(transport._checked)
            for i in range(5):  # unique, heavy documents: none of them is parsed
                query = "{" + " __typename" * 1900 + f" # {i}\n}}"
                response = await post(client, {"query": query}, tenants.acme_token)
                assert response.status_code == 429
                assert code_of(response) == "RATE_LIMITED"
                assert int(response.headers["retry-after"]) >= 1
            assert len(transport._checked) == known


async def test_answers_are_for_the_callers_cache_only(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"token": tenants.acme_token}
    )
    assert response.headers["cache-control"] == "private"
    assert {v.strip().lower() for v in response.headers["vary"].split(",")} >= {
        "token",
        "authorization",
        "accept",
    }


async def test_registered_documents_are_kept_without_padding_and_expire(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    junk = "{ __typename }\n#" + "x" * 60_000
    body = {"query": junk, "extensions": persisted(junk)}
    assert (await post(client, body, tenants.acme_token)).status_code == 200
    collection = storage._database["persisted_documents"]
    [stored_document] = await collection.find({}).to_list(None)
    assert stored_document["text"] == "{\n  __typename\n}"
    indexes = await collection.index_information()
    assert indexes["registered_at_ttl"]["expireAfterSeconds"] == 24 * 3600
    response = await post(client, {"extensions": persisted(junk)}, tenants.acme_token)
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("version", [True, 1.0, "1", 2])
async def test_persisted_query_version_is_the_integer_1(
    client: httpx.AsyncClient, tenants: Tenants, version: Any
) -> None:
    query = "{ __typename }"
    extensions = {"persistedQuery": {"version": version, "sha256Hash": sha256(query)}}
    response = await post(client, {"query": query, "extensions": extensions}, tenants.acme_token)
    assert (response.status_code, code_of(response)) == (400, "BAD_REQUEST")


async def test_a_misspelt_graphql_path_answers_in_graphql_shape(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    response = await post_to(client, "/graphql/", {"query": "{ __typename }"}, tenants.acme_token)
    assert response.status_code == 404
    assert code_of(response) == "NOT_FOUND"


async def post_to(client: httpx.AsyncClient, path: str, body: Any, token: str) -> httpx.Response:
    headers = {"content-type": "application/json", "token": token}
    return await client.post(path, content=json.dumps(body), headers=headers)


async def test_a_tenant_cannot_learn_what_another_registered(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    body = {"query": QUERY, "extensions": persisted(QUERY)}
    assert (await post(client, body, tenants.acme_token)).status_code == 200
    response = await post(client, {"extensions": persisted(QUERY)}, tenants.globex_token)
    assert code_of(response) == "PERSISTED_QUERY_NOT_FOUND"  # as for a hash nobody sent
    # The same account's instance token shares its account's documents.
    response = await post(client, {"extensions": persisted(QUERY)}, tenants.main_token)
    assert response.json() == {"data": {"favorites": {"totalCount": 0}}}


async def test_an_absurd_content_length_is_a_client_error(
    client: httpx.AsyncClient, tenants: Tenants, caplog: pytest.LogCaptureFixture
) -> None:
    scope_headers = {
        "content-type": "application/json",
        "content-length": "9" * 5000,
        "token": tenants.acme_token,
    }
    request = client.build_request("POST", "/graphql", content=b"{}", headers=scope_headers)
    response = await client.send(request)
    assert (response.status_code, code_of(response)) == (413, "PAYLOAD_TOO_LARGE")
    assert not [r for r in caplog.records if r.exc_info]
