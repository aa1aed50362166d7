"""The application factory.

``create_app(settings)`` builds the Starlette app; its lifespan opens the database client,
creates the indexes, starts the webhook worker (``favgate.webhooks``), hands the storage
to requests as lifespan state, and stops the worker and closes the client on shutdown.
Nothing connects at import time. For uvicorn directly:
``uvicorn --factory favgate.app:create_app``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from favgate import apis, graphiql, metrics, openapi, rest
from favgate.bodylimit import BodyLimitMiddleware
from favgate.config import Settings
from favgate.cors import ApiCorsMiddleware
from favgate.graphql_http import GraphQLTransport
from favgate.identity import IdentityMiddleware
from favgate.logs import RequestIdMiddleware
from favgate.persisted import PersistedDocuments, load_manifest
from favgate.ratelimit.limiter import Limiter, Policy
from favgate.schema import build_schema
from favgate.storage import Storage, open_storage
from favgate.webhooks.worker import WebhookWorker
from favgate.websocket import WebSocketView

logger = logging.getLogger(__name__)


class State(TypedDict):
    storage: Storage
    settings: Settings
    limiter: Limiter


def create_app(settings: Settings | None = None) -> Starlette:
    settings = Settings.from_env() if settings is None else settings

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        storage = open_storage(settings)
        policy = Policy(limit=settings.rate_limit, leases=settings.rate_limit_leases)
        limiter = Limiter(storage.rate_limits, policy)
        webhooks = WebhookWorker(storage, settings) if settings.webhook_worker else None
        try:
            await storage.ensure_indexes()
            logger.info("connected to %s", settings.redacted_uri)
            if webhooks is not None:  # relaying changes before the first request makes one
                await webhooks.start()
            yield {"storage": storage, "settings": settings, "limiter": limiter}
        finally:
            if webhooks is not None:
                await webhooks.stop()
            await limiter.close()  # unspent leases go back while the database is there
            await storage.close()

    schema = build_schema(settings)
    trusted = (
        None if settings.trusted_documents is None else load_manifest(settings.trusted_documents)
    )
    graphql_http = GraphQLTransport(schema, settings, PersistedDocuments(trusted))
    subscriptions = WebSocketView(
        schema,
        max_message_bytes=settings.max_body_bytes,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        max_subscriptions_per_token=settings.max_subscriptions_per_token,
    )
    routes = [
        # The busiest first: the router tries routes in order, on every request.
        *rest.routes,
        # Every method: the transport answers 405 itself, in GraphQL's shape.
        Route("/graphql", graphql_http),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *openapi.routes,
        # Subscriptions: a Route only matches HTTP, a WebSocketRoute only WebSockets.
        WebSocketRoute("/graphql", subscriptions),
        *metrics.routes,
        *graphiql.routes(settings.graphiql),
    ]
    middleware = [
        # Outermost first: the request id names every log line of the request, metrics
        # then time and count everything inside, refusals included.
        Middleware(RequestIdMiddleware),
        Middleware(metrics.MetricsMiddleware),
        # Outside every refusal below, so that a browser app can read them (favgate.cors).
        *cors(settings),
        # Bodies over the cap (413) and POSTs that are not JSON (415), before anything reads
        # them: transport checks, ahead of every check of the REST contract.
        Middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes),
        # Who the request is, once, for both APIs; each charges its budget by cost.
        Middleware(IdentityMiddleware),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: apis.http_error},
    )
    # A trailing slash is another path, not a redirect: a Location built from the Host
    # header would point wherever the client says.
    app.router.redirect_slashes = False
    return app


def cors(settings: Settings) -> list[Middleware]:
    """CORS for the configured origins; none without any, so no response carries it."""
    if not settings.cors_origins:
        return []
    return [Middleware(ApiCorsMiddleware, origins=settings.cors_origins)]


async def healthz(request: Request) -> Response:
    """The process is up and serving; says nothing of the database."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready for traffic: the database answers a ping."""
    storage: Storage = request.state.storage
    try:
        await storage.ping()
    except Exception as exc:
        logger.warning("readiness check failed: %s", exc)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})
