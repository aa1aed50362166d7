"""``GET /metrics``: requests by route template, method and status, latency, GraphQL
operations, database errors, rate-limit refusals and open subscriptions, read back over
the wire in the Prometheus text format.

The metrics are the process's (one registry, shared by every app in it), so each test
reads them before and after and asserts on the difference.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import strawberry
from helpers import CHAT_JID, Tenants, serving
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from favgate import metrics
from favgate.config import Settings
from favgate.embedded import ServerProcess
from favgate.errors import FavgateError, ServiceUnavailable
from favgate.storage import Storage

Sample = tuple[str, frozenset[tuple[str, str]]]
FAVORITE_ROUTE = "/api/chat/favorite/{instance}"


async def scrape(client: httpx.AsyncClient) -> dict[Sample, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def key(metric: str, /, **labels: str) -> Sample:
    return metric, frozenset(labels.items())


class Delta:
    """The change of every sample between two scrapes."""

    def __init__(self, before: dict[Sample, float], after: dict[Sample, float]) -> None:
        self.before, self.after = before, after

    def __call__(self, metric: str, /, **labels: str) -> float:
        sample = key(metric, **labels)
        return self.after.get(sample, 0.0) - self.before.get(sample, 0.0)


async def delta_around(client: httpx.AsyncClient, *requests: tuple[str, str, dict]) -> Delta:
    before = await scrape(client)
    for method, url, kwargs in requests:
        await client.request(method, url, **kwargs)
    return Delta(before, await scrape(client))


def favorite(token: str, instance: str = "main") -> tuple[str, str, dict]:
    body = {"number": CHAT_JID, "favorite": True}
    return "POST", f"/api/chat/favorite/{instance}", {"json": body, "headers": {"token": token}}


def graphql(query: str, token: str, **extra: object) -> tuple[str, str, dict]:
    return "POST", "/graphql", {"json": {"query": query, **extra}, "headers": {"token": token}}


# --- HTTP requests ------------------------------------------------------------------------


async def test_every_metric_is_exposed(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for name in (
        "favgate_http_requests_total",
        "favgate_http_request_duration_seconds",
        "favgate_graphql_operations_total",
        "favgate_database_errors_total",
        "favgate_rate_limited_requests_total",
        "favgate_graphql_subscriptions_open",
        "process_resident_memory_bytes",
    ):
        assert f"\n# TYPE {name} " in text, name


async def test_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    delta = await delta_around(
        client,
        favorite(tenants.main_token),
        favorite(tenants.acme_token, instance="offline"),
        favorite("not-a-token", instance="x-" * 20),
    )
    requests = "favgate_http_requests_total"
    assert delta(requests, route=FAVORITE_ROUTE, method="POST", status="200") == 1
    assert delta(requests, route=FAVORITE_ROUTE, method="POST", status="503") == 1
    assert delta(requests, route=FAVORITE_ROUTE, method="POST", status="401") == 1
    latency = "favgate_http_request_duration_seconds_count"
    assert delta(latency, route=FAVORITE_ROUTE, method="POST") == 3
    assert delta("favgate_http_request_duration_seconds_sum", route=FAVORITE_ROUTE, method="POST")
    # No series names a raw path: one per route, whatever the instance.
    assert not any("/api/chat/favorite/main" in str(labels) for _, labels in delta.after)


async def test_unmatched_paths_and_odd_methods_share_series(client: httpx.AsyncClient) -> None:
    delta = await delta_around(
        client,
        ("GET", "/nothing/here", {}),
        ("GET", "/nothing/else", {}),
        ("PROPFIND", "/healthz", {}),
    )
    requests = "favgate_http_requests_total"
    assert delta(requests, route="unmatched", method="GET", status="404") == 2
    assert delta(requests, route="/healthz", method="other", status="405") == 1
    assert not any("/nothing" in str(labels) for _, labels in delta.after)


# --- GraphQL operations -------------------------------------------------------------------


async def test_graphql_operations_by_type_name_and_outcome(
    client: httpx.AsyncClient, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Names get series of their own while there is room: make room, whatever ran before.
    monkeypatch.setattr(metrics, "_operation_names", set())
    token = tenants.main_token
    delta = await delta_around(
        client,
        graphql('query Favorites { favorites(instance: "main") { totalCount } }', token),
        graphql('{ favorites(instance: "main") { totalCount } }', "not-a-token"),
        graphql(
            f'mutation {{ setFavorite(instance: "main", number: "{CHAT_JID}", favorite: true)'
            " { success } }",
            token,
        ),
        graphql("{ favorites(", token),
    )
    operations = "favgate_graphql_operations_total"
    assert delta(operations, type="query", name="Favorites", outcome="ok") == 1
    # Refused before they ran, whatever they held: counted, but not by their type or name.
    assert delta(operations, type="unknown", name="anonymous", outcome="UNAUTHENTICATED") == 1
    assert delta(operations, type="mutation", name="anonymous", outcome="ok") == 1
    assert delta(operations, type="unknown", name="anonymous", outcome="GRAPHQL_PARSE_FAILED") == 1


async def test_client_chosen_names_cannot_grow_the_series(
    client: httpx.AsyncClient, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "_operation_names", set())
    monkeypatch.setattr(metrics, "MAX_OPERATION_NAMES", 2)
    query = 'query {name} {{ favorites(instance: "main") {{ totalCount }} }}'
    names = ["First", "Second", "Third", "First"]
    long_name = "N" * 65
    requests = [graphql(query.format(name=name), tenants.main_token) for name in names]
    requests.append(graphql(query.format(name=long_name), tenants.main_token))
    delta = await delta_around(client, *requests)
    operations = "favgate_graphql_operations_total"
    assert delta(operations, type="query", name="First", outcome="ok") == 2
    assert delta(operations, type="query", name="Second", outcome="ok") == 1
    # Past the cap, and names that are no short identifier, count as "other".
    assert delta(operations, type="query", name="other", outcome="ok") == 2
    assert delta(operations, type="query", name="Third", outcome="ok") == 0


# --- Database errors, refusals, subscriptions --------------------------------------------


@pytest.fixture
async def outage(settings: Settings, own_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a gateway whose database was killed after it started."""
    down = settings.with_uri(own_server.uri).replace(database_timeout_ms=300)
    async with serving(down) as client:
        await asyncio.to_thread(own_server.kill)
        yield client
        # Back before the client closes: PyMongo's async client leaks a socket when it is
        # closed in the middle of a reconnect (see helpers.collect_leaked_sockets).
        await asyncio.to_thread(own_server.start)
        await client.get("/readyz")


@pytest.mark.both_drivers
@pytest.mark.slow
async def test_database_errors_are_counted_per_api(outage: httpx.AsyncClient) -> None:
    query = '{ favorite(instance: "main", number: "5511999999999") { favorite } }'
    delta = await delta_around(
        outage,
        favorite("some-token"),
        graphql(query, "some-token"),
    )
    assert delta("favgate_database_errors_total", api="rest") == 1
    assert delta("favgate_database_errors_total", api="graphql") == 1
    requests = "favgate_http_requests_total"
    assert delta(requests, route=FAVORITE_ROUTE, method="POST", status="503") == 1


def refusing_app() -> Starlette:
    """A small app behind MetricsMiddleware that refuses, over REST and over GraphQL, and
    whose GraphQL resolver meets a database outage."""

    class RateLimited(FavgateError):
        status_code = 429
        code = "RATE_LIMITED"

    @strawberry.type
    class Query:
        @strawberry.field
        def limited(self) -> bool:
            raise RateLimited("Rate limit exceeded. Try again later.")

        @strawberry.field
        def down(self) -> bool:
            raise ServiceUnavailable()

    schema = strawberry.Schema(query=Query, extensions=[metrics.OperationMetrics])

    async def refuse(request: Request) -> Response:
        return JSONResponse({"success": False}, status_code=429)

    routes = [
        Route("/limited/{thing}", refuse, methods=["POST"]),
        Route("/graphql", GraphQL(schema), methods=["POST"]),
        *metrics.routes,
    ]
    return Starlette(routes=routes, middleware=[Middleware(metrics.MetricsMiddleware)])


async def test_rate_limit_refusals_are_counted_once() -> None:
    transport = httpx.ASGITransport(app=refusing_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as client:
        delta = await delta_around(
            client,
            ("POST", "/limited/a", {}),
            ("POST", "/limited/b", {}),
            ("POST", "/graphql", {"json": {"query": "{ limited }"}}),
        )
    refused = "favgate_rate_limited_requests_total"
    assert delta(refused, route="/limited/{thing}") == 2
    # Refused inside GraphQL (an error coded RATE_LIMITED, whatever the HTTP status).
    assert delta(refused, route="/graphql") == 1
    operations = "favgate_graphql_operations_total"
    assert delta(operations, type="query", name="anonymous", outcome="RATE_LIMITED") == 1


async def test_the_gateways_own_refusals_are_counted_by_route(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    async with serving(settings.replace(rate_limit=1)) as client:
        delta = await delta_around(
            client, favorite(tenants.main_token), favorite(tenants.main_token)
        )
    requests = "favgate_http_requests_total"
    assert delta(requests, route=FAVORITE_ROUTE, method="POST", status="429") == 1
    assert delta("favgate_rate_limited_requests_total", route=FAVORITE_ROUTE) == 1


async def test_an_outage_met_by_a_resolver_is_a_database_error() -> None:
    transport = httpx.ASGITransport(app=refusing_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as client:
        delta = await delta_around(client, ("POST", "/graphql", {"json": {"query": "{ down }"}}))
    assert delta("favgate_database_errors_total", api="graphql") == 1
    operations = "favgate_graphql_operations_total"
    assert delta(operations, type="query", name="anonymous", outcome="SERVICE_UNAVAILABLE") == 1


async def test_open_subscriptions_gauge_is_live(client: httpx.AsyncClient) -> None:
    before = (await scrape(client))[key("favgate_graphql_subscriptions_open")]
    metrics.OPEN_SUBSCRIPTIONS.inc()
    try:
        during = (await scrape(client))[key("favgate_graphql_subscriptions_open")]
    finally:
        metrics.OPEN_SUBSCRIPTIONS.dec()
    assert during == before + 1
