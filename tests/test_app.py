"""The application: health and readiness, a database outage and the recovery after it,
the error shape of unknown routes, and GraphiQL switched on and off by settings."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from helpers import CHAT_JID, Tenants, collect_leaked_sockets, seed_instance, serving
from pymongo.errors import ConnectionFailure

from favgate.app import create_app
from favgate.auth import generate_token
from favgate.config import Settings
from favgate.embedded import ServerProcess
from favgate.storage import Storage

UNAVAILABLE = {"success": False, "error": {"message": "Service temporarily unavailable"}}
SET_FAVORITE = """
mutation Set($instance: String!, $number: String!) {
  setFavorite(instance: $instance, number: $number, favorite: true) { success chatJid }
}
"""


async def favorite(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/api/chat/favorite/main",
        json={"number": "5511999999999", "favorite": True},
        headers={"token": token},
    )


# --- Health and readiness -----------------------------------------------------------------


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def _dead_port() -> int:
    """A port nothing listens on (racy in theory: another process could take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.both_drivers
@pytest.mark.slow
async def test_start_up_fails_fast_without_a_database(settings: Settings) -> None:
    """The lifespan creates the indexes, so a gateway with no database refuses to start,
    within the configured timeout rather than the driver's 30 s."""
    dead = settings.with_uri(f"mongodb://127.0.0.1:{_dead_port()}/?directConnection=true")
    application = create_app(dead.replace(database_timeout_ms=300))
    started = time.monotonic()
    with pytest.raises(ConnectionFailure):
        async with application.router.lifespan_context(application):
            pytest.fail("the lifespan started without a database")
    collect_leaked_sockets()  # the lifespan closed the client while it was reconnecting
    assert time.monotonic() - started < 5


# --- An outage and the recovery after it --------------------------------------------------


async def assert_unavailable(client: httpx.AsyncClient, token: str) -> None:
    readyz = await client.get("/readyz")
    assert readyz.status_code == 503
    assert readyz.json() == {"status": "unavailable"}

    healthz = await client.get("/healthz")
    assert healthz.status_code == 200
    assert healthz.json() == {"status": "ok"}

    started = time.monotonic()
    response = await favorite(client, token)
    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.json() == UNAVAILABLE

    started = time.monotonic()
    response = await client.post(
        "/graphql",
        json={"query": SET_FAVORITE, "variables": {"instance": "main", "number": CHAT_JID}},
        headers={"token": token},
    )
    assert time.monotonic() - started < 5
    # 503, whether the outage met the request before it ran (no data) or while it ran.
    assert response.status_code == 503
    body = response.json()
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["message"] == "Service temporarily unavailable"
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}


async def wait_for_recovery(client: httpx.AsyncClient, token: str, limit: float) -> float:
    """Seconds until a favorite succeeds again; fails after ``limit``."""
    started = time.monotonic()
    while True:
        response = await favorite(client, token)
        elapsed = time.monotonic() - started
        if response.status_code == 200:
            return elapsed
        assert response.status_code == 503, response.text
        assert elapsed < limit, f"no recovery after {elapsed:.1f} s: {response.text}"
        await asyncio.sleep(0.2)


@pytest.mark.both_drivers
@pytest.mark.slow
async def test_outage_and_recovery(own_server: ServerProcess, driver: str) -> None:
    settings = Settings(
        mongo_driver=driver,  # type: ignore[arg-type]
        database_timeout_ms=500,
    ).with_uri(own_server.uri)
    account_token, token = generate_token(), generate_token()
    async with serving(settings) as client:
        await seed_instance(settings, account_token=account_token, instance_token=token)
        assert (await client.get("/readyz")).status_code == 200
        response = await favorite(client, token)
        assert response.status_code == 200, response.text

        await asyncio.to_thread(own_server.kill)
        await assert_unavailable(client, token)
        # Still unavailable on a second round: no request hangs or crashes the app.
        await assert_unavailable(client, token)

        # The same port again. The restarted server is in memory, hence empty: seed it anew.
        await asyncio.to_thread(own_server.start)
        await seed_instance(settings, account_token=account_token, instance_token=token)
        await wait_for_recovery(client, token, limit=15)
        readyz = await client.get("/readyz")
        assert (readyz.status_code, readyz.json()) == (200, {"status": "ok"})


# --- Errors outside the API ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/nope", 404, "Not Found"),
        ("POST", "/api/chat/nope/main", 404, "Not Found"),
        ("GET", "/api/chat/favorite/main", 405, "Method Not Allowed"),
        ("POST", "/healthz", 405, "Method Not Allowed"),
    ],
)
async def test_routing_errors_share_the_error_shape(
    client: httpx.AsyncClient, method: str, path: str, status: int, message: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"success": False, "error": {"message": message}}


# --- GraphiQL -----------------------------------------------------------------------------

HTML = {"Accept": "text/html"}


async def test_graphiql_is_served_when_enabled(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    assert settings.graphiql is True
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


@pytest.fixture
async def no_graphiql(settings: Settings, storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings.replace(graphiql=False)) as client:
        yield client


async def test_graphiql_is_not_served_when_disabled(no_graphiql: httpx.AsyncClient) -> None:
    response = await no_graphiql.get("/graphql", headers=HTML)
    # A GET without a query is then a GraphQL request without one.
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert "graphiql" not in response.text.lower()


async def test_graphql_still_answers_when_graphiql_is_disabled(
    no_graphiql: httpx.AsyncClient, tenants: Tenants
) -> None:
    query = '{ favorites(instance: "main") { totalCount } }'
    headers = {"token": tenants.main_token}
    response = await no_graphiql.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"data": {"favorites": {"totalCount": 0}}}
