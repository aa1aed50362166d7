"""Hostile input over HTTP, for the REST route and GraphQL alike: bodies too large or not
JSON, values that try to become query operators, and every way a token can be wrong."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from helpers import CommandLog, Tenants, serving

from favgate.auth import generate_token, hash_token
from favgate.bodylimit import BodyLimitMiddleware
from favgate.config import Settings
from favgate.storage import Storage

REST = "/api/chat/favorite/main"
CHAT = {"number": "5511999999999", "favorite": True}
TYPENAME = {"query": "{ __typename }"}
CAP = 64 * 1024


def rest_error(message: str) -> dict[str, Any]:
    return {"success": False, "error": {"message": message}}


def graphql_error(message: str, code: str) -> dict[str, Any]:
    # No "data": refused before anything ran.
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


TOO_LARGE = "Request body too large"
NOT_JSON = "Content-Type must be application/json"
REFUSED = {
    ("rest", 413): rest_error(TOO_LARGE),
    ("rest", 415): rest_error(NOT_JSON),
    ("graphql", 413): graphql_error(TOO_LARGE, "PAYLOAD_TOO_LARGE"),
    ("graphql", 415): graphql_error(NOT_JSON, "UNSUPPORTED_MEDIA_TYPE"),
}


def padded(document: dict[str, Any], size: int) -> bytes:
    """``document`` as JSON, padded with spaces to exactly ``size`` bytes."""
    body = json.dumps(document).encode()
    return body + b" " * (size - len(body))


async def in_chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 4096):
        yield body[start : start + 4096]


async def send(
    client: httpx.AsyncClient,
    api: str,
    body: bytes,
    token: str | None,
    *,
    content_type: str | None = "application/json",
    streamed: bool = False,
) -> httpx.Response:
    headers = {} if token is None else {"token": token}
    if content_type is not None:
        headers["Content-Type"] = content_type
    content = in_chunks(body) if streamed else body
    response = await client.post(
        REST if api == "rest" else "/graphql", content=content, headers=headers
    )
    # A streamed body has no length to check up front: only the count while reading.
    assert ("content-length" in response.request.headers) is not streamed
    return response


async def stored(storage: Storage) -> int:
    return int(await storage._database["favorites"].count_documents({}))


# --- Body size ----------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_rest_bodies_are_capped(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, streamed: bool
) -> None:
    at_cap = await send(client, "rest", padded(CHAT, CAP), tenants.main_token, streamed=streamed)
    assert at_cap.status_code == 200
    over = await send(client, "rest", padded(CHAT, CAP + 1), tenants.main_token, streamed=streamed)
    assert (over.status_code, over.json()) == (413, REFUSED["rest", 413])
    assert await stored(storage) == 1


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_graphql_bodies_are_capped(
    client: httpx.AsyncClient, tenants: Tenants, streamed: bool
) -> None:
    token = tenants.main_token
    at_cap = await send(client, "graphql", padded(TYPENAME, CAP), token, streamed=streamed)
    assert at_cap.json() == {"data": {"__typename": "Query"}}
    over = await send(client, "graphql", padded(TYPENAME, CAP + 1), token, streamed=streamed)
    assert (over.status_code, over.json()) == (413, REFUSED["graphql", 413])


async def test_the_cap_is_a_setting(settings: Settings, tenants: Tenants) -> None:
    async with serving(settings.replace(max_body_bytes=1024)) as client:
        small = await send(client, "rest", padded(CHAT, 1024), tenants.main_token)
        large = await send(client, "rest", padded(CHAT, 1025), tenants.main_token)
    assert (small.status_code, large.status_code) == (200, 413)


async def test_a_declared_length_over_the_cap_is_refused_unread() -> None:
    """Content-Length decides before a byte is read, and the app never runs."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app ran")

    async def receive() -> Any:
        raise AssertionError("the body was read")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
    scope = {"type": "http", "method": "POST", "path": REST, "headers": headers}
    await BodyLimitMiddleware(app, max_body_bytes=10)(scope, receive, send)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == REFUSED["rest", 413]


# --- Media type ---------------------------------------------------------------------------

NOT_JSON_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=favgate",
    "application/xml",
    "text/json",
    "application/json-patch+json",
    "application/graphql",
]
JSON_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON;charset=UTF-8",
]


@pytest.mark.parametrize("api", ["rest", "graphql"])
@pytest.mark.parametrize("content_type", NOT_JSON_TYPES)
async def test_bodies_that_are_not_declared_json_are_refused(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, api: str, content_type: str
) -> None:
    # Valid JSON all the same: the declared type alone decides (CSRF: a browser sends
    # form and text/plain bodies cross-site without asking first).
    body = json.dumps(CHAT if api == "rest" else TYPENAME).encode()
    response = await send(client, api, body, tenants.main_token, content_type=content_type)
    assert (response.status_code, response.json()) == (415, REFUSED[api, 415])
    assert await stored(storage) == 0


@pytest.mark.parametrize("api", ["rest", "graphql"])
@pytest.mark.parametrize("content_type", JSON_TYPES)
async def test_json_with_parameters_is_accepted(
    client: httpx.AsyncClient, tenants: Tenants, api: str, content_type: str
) -> None:
    body = json.dumps(CHAT if api == "rest" else TYPENAME).encode()
    response = await send(client, api, body, tenants.main_token, content_type=content_type)
    assert response.status_code == 200


@pytest.mark.parametrize("api", ["rest", "graphql"])
async def test_a_repeated_content_type_counts_by_its_first_value(
    client: httpx.AsyncClient, tenants: Tenants, api: str
) -> None:
    body = json.dumps(CHAT if api == "rest" else TYPENAME).encode()
    path = REST if api == "rest" else "/graphql"
    for types, status in (
        (("application/json", "text/plain"), 200),
        (("text/plain", "application/json"), 415),
    ):
        headers = [("token", tenants.main_token), *(("Content-Type", t) for t in types)]
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == status, response.text


async def test_graphql_multipart_uploads_are_refused(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    operations = json.dumps({"query": "{ __typename }", "variables": {"file": None}})
    files = {"operations": (None, operations), "map": (None, '{"0": ["variables.file"]}')}
    headers = {"token": tenants.main_token}
    response = await client.post("/graphql", files=files, headers=headers)
    assert (response.status_code, response.json()) == (415, REFUSED["graphql", 415])


TRANSPORT_FIRST = [
    # (path, body, content type, token, status): each breaks a contract check as well.
    ("/api/chat/favorite/", json.dumps(CHAT).encode(), "text/plain", None, 415),
    ("/api/chat/favorite/ghost", b"{not json", "text/plain", "bad", 415),
    ("/api/chat/favorite/ghost", padded(CHAT, CAP + 1), "application/json", "bad", 413),
    ("/api/chat/favorite/ghost", padded(CHAT, CAP + 1), "text/plain", None, 415),
]


@pytest.mark.parametrize(("path", "body", "content_type", "token", "status"), TRANSPORT_FIRST)
async def test_transport_checks_come_first(
    client: httpx.AsyncClient,
    path: str,
    body: bytes,
    content_type: str,
    token: str | None,
    status: int,
) -> None:
    headers = {"Content-Type": content_type, **({} if token is None else {"token": token})}
    response = await client.post(path, content=body, headers=headers)
    assert (response.status_code, response.json()) == (status, REFUSED["rest", status])


async def test_routes_that_read_no_body_still_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat/nope/main", content=b"x", headers={})
    assert (response.status_code, response.json()) == (404, rest_error("Not Found"))
    health = await client.get("/healthz")
    assert health.status_code == 200


# --- Values that try to become query operators --------------------------------------------


def keys(value: Any) -> Iterator[str]:
    """Every key of every document nested in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from keys(item)


HOSTILE_KEYS = {"$gt", "$ne", "$regex", "$where", "$exists", "$expr"}
OPERATOR_BODIES = [
    {"messageId": {"$gt": ""}, "favorite": True},
    {"messageId": {"$ne": None}, "favorite": True},
    {"number": {"$regex": ".*"}, "favorite": True},
    {"number": {"$where": "sleep(1000)"}, "favorite": True},
    {"messageId": [{"$exists": True}], "favorite": True},
    {"number": "5511999999999", "favorite": {"$ne": False}},
    {"messageId": 1, "favorite": True},
    {"$where": "1", "messageId": {"$expr": {}}, "favorite": True},
]


@pytest.mark.parametrize("body", OPERATOR_BODIES)
async def test_rest_operators_are_refused_before_the_database(
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    commands: CommandLog,
    body: dict[str, Any],
) -> None:
    response = await send(client, "rest", json.dumps(body).encode(), tenants.main_token)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Invalid request body: ")
    assert HOSTILE_KEYS.isdisjoint(keys(commands.documents_outside("rate_limits")))
    assert await stored(storage) == 0


OPERATOR_VARIABLES = [
    {"messageId": {"$gt": ""}},
    {"number": {"$ne": None}},
    {"messageId": ["$regex"]},
    {"number": 5511999999999},
]


@pytest.mark.parametrize("variables", OPERATOR_VARIABLES)
async def test_graphql_operators_are_refused_before_the_database(
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    commands: CommandLog,
    variables: dict[str, Any],
) -> None:
    mutation = (
        "mutation ($number: String, $messageId: String) { setFavorite(instance: "
        '"main", number: $number, messageId: $messageId, favorite: true) { success } }'
    )
    body = json.dumps({"query": mutation, "variables": variables}).encode()
    result = (await send(client, "graphql", body, tenants.main_token)).json()
    assert "data" not in result  # refused while coercing the variables: nothing ran
    [error] = result["errors"]
    assert "cannot represent" in error["message"]
    assert HOSTILE_KEYS.isdisjoint(keys(commands.documents_outside("rate_limits")))
    assert await stored(storage) == 0


@pytest.mark.parametrize("text", ["$gt", '{"$gt": ""}', ".*", "$where"])
async def test_operator_lookalikes_are_only_text(
    client: httpx.AsyncClient, tenants: Tenants, commands: CommandLog, text: str
) -> None:
    body = json.dumps({"messageId": text, "favorite": True}).encode()
    response = await send(client, "rest", body, tenants.main_token)
    assert (response.status_code, response.json()) == (404, rest_error("Message not found"))
    # The message was looked up by that very string, compared for equality.
    lookups = [c for c in commands.documents if c.get("find") == "messages"]
    assert lookups
    assert all(lookup["filter"]["id"] == text for lookup in lookups)
    assert HOSTILE_KEYS.isdisjoint(keys(commands.documents_outside("rate_limits")))


async def test_an_operator_in_the_instance_name_is_only_a_name(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    path = "/api/chat/favorite/" + '{"$ne": null}'
    response = await client.post(path, json=CHAT, headers={"token": tenants.acme_token})
    assert (response.status_code, response.json()) == (404, rest_error("Instance not found"))


# --- Tokens -------------------------------------------------------------------------------


def test_tokens_come_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = {generate_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) >= 43 for token in tokens)  # 32 random bytes, base64url
    monkeypatch.setattr(secrets, "token_urlsafe", lambda nbytes: f"from-secrets-{nbytes}")
    assert generate_token() == "from-secrets-32"


async def test_tokens_reach_the_database_only_as_hashes(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, commands: CommandLog
) -> None:
    token = tenants.main_token
    assert (await send(client, "rest", json.dumps(CHAT).encode(), token)).status_code == 200
    query = json.dumps({"query": '{ favorites(instance: "main") { totalCount } }'}).encode()
    assert (await send(client, "graphql", query, token)).status_code == 200
    sent = json.dumps(commands.documents, default=str)
    assert token not in sent
    assert hash_token(token) in sent  # looked up by its hash
    documents = [doc async for doc in storage._database["instances"].find()]
    assert token not in json.dumps(documents, default=str)


CLIENT_LOGGERS = ("httpx", "httpcore")


async def test_tokens_are_never_logged(
    client: httpx.AsyncClient, tenants: Tenants, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = generate_token()
    query = json.dumps({"query": '{ favorites(instance: "main") { totalCount } }'}).encode()
    with caplog.at_level(logging.DEBUG):
        for token in (tenants.main_token, tenants.acme_token, unknown):
            await send(client, "rest", json.dumps(CHAT).encode(), token)
            await send(client, "graphql", query, token)
            await client.post(f"{REST}?token={token}", json=CHAT)
            await client.get("/graphql", params={"query": "{ __typename }", "token": token})
    # The test's own HTTP client logs the URLs it requests; everything else is favgate's.
    logged = [r.getMessage() for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert logged  # the requests did log (at least the database's commands)
    for token in (tenants.main_token, tenants.acme_token, unknown):
        assert not any(token in message for message in logged)


async def test_tokens_are_never_read_from_the_query_string(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.acme_token
    response = await client.post(f"{REST}?token={token}", json=CHAT)
    assert (response.status_code, response.json()) == (401, rest_error("Invalid token"))
    query = '{ favorites(instance: "main") { totalCount } }'
    for method in ("GET", "POST"):
        params = {"token": token, **({"query": query} if method == "GET" else {})}
        body = None if method == "GET" else {"query": query}
        response = await client.request(method, "/graphql", params=params, json=body)
        [error] = response.json()["errors"]
        assert (error["message"], error["extensions"]["code"]) == (
            "Invalid token",
            "UNAUTHENTICATED",
        )
    assert await stored(storage) == 0


INVALID_TOKEN = '{"success":false,"error":{"message":"Invalid token"}}'
BAD_TOKENS = {
    "missing": {},
    "empty": {"token": ""},
    "blank": {"token": "   "},
    "unknown": {"token": "a" * 43},
    "too long": {"token": "a" * 257},
    "not ascii": {"token": "t\u00f6ken".encode("latin-1")},
    "bearer without a token": {"Authorization": "Bearer "},
    "another scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    "a hash of a real token": {},  # filled in per test: the stored hash, used as a token
    "revoked": {},  # filled in per test
}


@pytest.fixture
async def uncached(settings: Settings, storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    # No lookup cache: a revocation takes effect on the very next request.
    async with serving(settings.replace(cache_ttl_seconds=0)) as client:
        yield client


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_every_bad_token_gets_the_same_401(
    uncached: httpx.AsyncClient, tenants: Tenants, storage: Storage, case: str
) -> None:
    headers = dict(BAD_TOKENS[case])
    if case == "a hash of a real token":
        headers = {"token": hash_token(tenants.main_token)}
    if case == "revoked":
        headers = {"token": tenants.acme_token}
        assert (await uncached.post(REST, json=CHAT, headers=headers)).status_code == 200
        await storage.directory.reset_account("acme", hash_token(generate_token()))
    rest = await uncached.post(REST, json=CHAT, headers=headers)
    assert (rest.status_code, rest.text) == (401, INVALID_TOKEN)
    query = {"query": '{ favorites(instance: "main") { totalCount } }'}
    graphql = await uncached.post("/graphql", json=query, headers=headers)
    [error] = graphql.json()["errors"]
    assert (error["message"], error["extensions"]) == ("Invalid token", {"code": "UNAUTHENTICATED"})
