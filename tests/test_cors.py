"""CORS (favgate.cors) over the ASGI app: preflights answered for the listed origins only,
the rate-limit headers and the request id exposed, errors (401, 413, 415, 429) readable by
the page, no CORS header at all when no origin is configured. The browser's own verdict is
in test_cors_browser.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from helpers import CHAT_JID, Tenants, serving

from favgate.config import Settings

ORIGIN = "https://app.example.com"
OTHER = "https://evil.example.com"
GRAPHQL = "/graphql"
REST = "/api/chat/favorite/main"
QUERY = {"query": '{ favorites(instance: "main") { totalCount } }'}
FAVORITE = {"number": CHAT_JID, "favorite": True}
RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit",
    "ratelimit-policy",
}
EXPOSED = RATE_LIMIT_HEADERS | {"retry-after", "x-request-id"}


@pytest.fixture
async def cors_client(settings: Settings, tenants: Tenants) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings.replace(cors_origins=("http://localhost:3000", ORIGIN))) as c:
        yield c


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type,token,authorization,x-request-id",
    }


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def listed(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",")}


def assert_readable(response: httpx.Response) -> None:
    """The answer as a page of ORIGIN may read it: allowed, its headers exposed."""
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in headers
    assert listed(headers["access-control-expose-headers"]) == EXPOSED
    assert "origin" in listed(response.headers["vary"])
    # Whatever budget or request-id header the answer carries, the page may read.
    sent = {
        name
        for name in response.headers
        if name.startswith(("x-ratelimit", "ratelimit", "retry-after", "x-request-id"))
    }
    assert "x-request-id" in sent
    assert sent <= EXPOSED


@pytest.mark.parametrize("path", [GRAPHQL, REST])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_preflight_of_a_listed_origin(
    cors_client: httpx.AsyncClient, path: str, method: str
) -> None:
    response = await cors_client.options(path, headers=preflight(ORIGIN, method))
    assert response.status_code == 200
    headers = cors_headers(response)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert listed(headers["access-control-allow-methods"]) == {"get", "post"}
    assert {"content-type", "token", "authorization", "x-request-id"} <= listed(
        headers["access-control-allow-headers"]
    )
    assert "access-control-allow-credentials" not in headers
    # Answered before the rate limiter: a preflight spends nothing.
    assert RATE_LIMIT_HEADERS.isdisjoint(response.headers)


@pytest.mark.parametrize("path", [GRAPHQL, REST])
async def test_preflight_of_another_origin_is_refused(
    cors_client: httpx.AsyncClient, path: str
) -> None:
    for origin in [OTHER, "https://app.example.com.evil.example", "http://app.example.com"]:
        response = await cors_client.options(path, headers=preflight(origin))
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers


async def test_preflight_of_another_method_or_header_is_refused(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.options(GRAPHQL, headers=preflight(ORIGIN, "DELETE"))
    assert response.status_code == 400
    headers = {**preflight(ORIGIN), "Access-Control-Request-Headers": "token,cookie"}
    assert (await cors_client.options(GRAPHQL, headers=headers)).status_code == 400


async def test_answers_are_readable_by_a_listed_origin(
    cors_client: httpx.AsyncClient, tenants: Tenants
) -> None:
    token = {"token": tenants.acme_token, "Origin": ORIGIN}
    response = await cors_client.post(GRAPHQL, json=QUERY, headers=token)
    assert response.status_code == 200 and "errors" not in response.json()
    assert_readable(response)
    assert set(response.headers) >= RATE_LIMIT_HEADERS
    response = await cors_client.get(GRAPHQL, params=QUERY, headers=token)
    assert response.status_code == 200 and "errors" not in response.json()
    assert_readable(response)
    response = await cors_client.post(REST, json=FAVORITE, headers=token)
    assert (response.status_code, response.json()["success"]) == (200, True)
    assert_readable(response)
    assert set(response.headers) >= RATE_LIMIT_HEADERS


async def test_answers_to_another_origin_are_not_allowed(
    cors_client: httpx.AsyncClient, tenants: Tenants
) -> None:
    """The server still answers (CORS is the browser's to enforce), without allowing it."""
    headers = {"token": tenants.acme_token, "Origin": OTHER}
    response = await cors_client.post(GRAPHQL, json=QUERY, headers=headers)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_errors_are_readable_by_a_listed_origin(settings: Settings, tenants: Tenants) -> None:
    limited = settings.replace(cors_origins=(ORIGIN,), rate_limit=1, max_body_bytes=1024)
    origin = {"Origin": ORIGIN}
    token = {**origin, "token": tenants.main_token}
    async with serving(limited) as client:
        unknown = await client.post(GRAPHQL, json=QUERY, headers={**origin, "token": "nope"})
        refusals = [
            (401, await client.post(REST, json=FAVORITE, headers={**origin, "token": "nope"})),
            (413, await client.post(GRAPHQL, json={"query": "#" * 2000}, headers=token)),
            (415, await client.post(REST, content=b"{}", headers=token)),
            (200, await client.post(REST, json=FAVORITE, headers=token)),
            (429, await client.post(GRAPHQL, json=QUERY, headers=token)),
            (429, await client.post(REST, json=FAVORITE, headers=token)),
        ]
    for status, response in refusals:
        assert response.status_code == status, response.text
        assert_readable(response)
    # GraphQL answers an unknown token with an error in the result (its status is the
    # transport's to choose): the page can read it too.
    assert unknown.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert_readable(unknown)
    assert "retry-after" in refusals[-1][1].headers


async def test_only_the_apis_speak_cors(cors_client: httpx.AsyncClient) -> None:
    for path in ["/healthz", "/openapi.json", "/metrics"]:
        response = await cors_client.get(path, headers={"Origin": ORIGIN})
        assert response.status_code == 200
        assert cors_headers(response) == {}
        response = await cors_client.options(path, headers=preflight(ORIGIN, "GET"))
        assert response.status_code == 405
        assert cors_headers(response) == {}


async def test_no_cors_without_origins(client: httpx.AsyncClient, tenants: Tenants) -> None:
    """The default: no origin is allowed, and no response says anything of CORS."""
    response = await client.options(GRAPHQL, headers=preflight(ORIGIN))
    assert response.status_code == 405
    assert cors_headers(response) == {}
    headers = {"token": tenants.acme_token, "Origin": ORIGIN}
    for response in [
        await client.post(GRAPHQL, json=QUERY, headers=headers),
        await client.post(REST, json=FAVORITE, headers=headers),
        await client.post(REST, json=FAVORITE, headers={"Origin": ORIGIN}),
    ]:
        assert cors_headers(response) == {}
        assert "origin" not in listed(response.headers.get("vary", ""))
