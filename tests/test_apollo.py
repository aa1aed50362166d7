"""Apollo Client 4, run by Node against a real ``favgate serve``, as a browser app uses it:

- automatic persisted queries (Apollo's PersistedQueryLink): the first request of a
  document sends its hash alone and is told ``PERSISTED_QUERY_NOT_FOUND``, the retry sends
  the document with its hash, and every later use is the hash alone; queries by GET;
- the normalized cache: a mutation selecting the favorite's ``record { id favorite }``
  updates the list the page already holds, with no request beyond the mutation's own.

tests/js/apollo.mjs drives the client and reports what it saw; the judging is here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from helpers import CHAT_JID, INSTANCE, Gateway, favgate_serve, needs_node, run_node

pytestmark = [needs_node, pytest.mark.slow]

FAVORITED = {"success": True, "favorite": True}
Step = dict[str, Any]
Request = dict[str, Any]


@pytest.fixture
async def gateway(mongodb_uri: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with favgate_serve(mongodb_uri, tmp_path / "serve.log") as gateway:
        yield gateway


async def run(gateway: Gateway, scenario: str) -> dict[str, Step]:
    steps = await run_node("apollo.mjs", f"{gateway.url}/graphql", scenario, token=gateway.token)
    return {step["name"]: step for step in steps}


def ok(step: Step) -> dict[str, Any]:
    """The step's data, after checking that the client raised no error."""
    assert "error" not in step, f"{step['name']}: {step['error']}\n{json.dumps(step['requests'])}"
    data: dict[str, Any] = step["result"]["data"]
    return data


def sent(request: Request) -> dict[str, Any]:
    """The GraphQL request's parameters, from the URL of a GET or the body of a POST."""
    if request["method"] == "POST":
        params: dict[str, Any] = request["body"]
        return params
    params = {name: value for name, [value] in parse_qs(urlsplit(request["url"]).query).items()}
    for name in ["variables", "extensions"]:  # JSON-encoded, by the spec
        if name in params:
            params[name] = json.loads(params[name])
    return params


def persisted_hash(request: Request) -> str:
    persisted = sent(request)["extensions"]["persistedQuery"]
    assert persisted["version"] == 1
    return str(persisted["sha256Hash"])


def assert_hash_only(request: Request, method: str) -> str:
    """A request that names its document by hash alone; the hash."""
    assert request["method"] == method, request
    assert "query" not in sent(request), request
    return persisted_hash(request)


def assert_not_found(request: Request) -> None:
    [error] = request["answer"]["errors"]
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND", request
    assert error["message"] == "PersistedQueryNotFound", request


def assert_registers(request: Request, sha256: str) -> None:
    """The retry: the document by POST, with the hash it has."""
    assert request["method"] == "POST", request
    document = request["body"]["query"]
    assert hashlib.sha256(document.encode()).hexdigest() == persisted_hash(request) == sha256


def assert_persisted(first: Step, again: Step, method: str) -> None:
    """first: hash only, not found, then the document; again: the hash only, answered."""
    assert len(first["requests"]) == 2, json.dumps(first["requests"])
    miss, retry = first["requests"]
    sha256 = assert_hash_only(miss, method)
    assert_not_found(miss)
    assert_registers(retry, sha256)
    [hit] = again["requests"]
    assert assert_hash_only(hit, method) == sha256
    assert hit["status"] == 200 and "errors" not in hit["answer"], hit
    assert ok(again) == ok(first)


async def test_automatic_persisted_queries(gateway: Gateway) -> None:
    steps = await run(gateway, "apq")
    mutation, mutation_again = steps["mutation, first"], steps["mutation, again"]
    assert ok(mutation) == {"setFavorite": {"__typename": "FavoriteResult", **FAVORITED}}
    assert_persisted(mutation, mutation_again, "POST")  # never a mutation by GET
    query, query_again = steps["query, first"], steps["query, again"]
    [edge] = ok(query)["favorites"]["edges"]
    assert edge["node"]["chatJid"] == CHAT_JID
    assert_persisted(query, query_again, "GET")


async def test_cache_takes_the_mutations_record(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        response = await client.post(
            f"/api/chat/favorite/{INSTANCE}",
            json={"number": CHAT_JID, "favorite": True},
            headers={"token": gateway.token},
        )
        assert response.status_code == 200, response.text
    steps = await run(gateway, "cache")
    [edge] = ok(steps["query"])["favorites"]["edges"]
    node = edge["node"]
    assert node["favorite"] is True
    record = ok(steps["mutation"])["setFavorite"]["record"]
    assert (record["id"], record["favorite"]) == (node["id"], False)
    # The list the page holds shows the new state: read from the cache, with no request.
    read = ok(steps["read"])
    assert steps["read"]["requests"] == []
    unfavorited = {**node, "favorite": False}
    for listed in [read["readQuery"], read["cacheOnly"]]:
        assert [e["node"] for e in listed["favorites"]["edges"]] == [unfavorited]
    assert read["readFragment"] == {"__typename": "Favorite", "id": node["id"], "favorite": False}
