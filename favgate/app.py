"""The application factory.

``create_app(settings)`` builds the Starlette app; its lifespan opens the database client,
creates the indexes, hands the storage to requests as lifespan state, and closes the
client on shutdown. Nothing connects at import time. For uvicorn directly:
``uvicorn --factory favgate.app:create_app``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from favgate import rest
from favgate.config import Settings
from favgate.schema import GraphQLView, build_schema
from favgate.storage import Storage, open_storage

logger = logging.getLogger(__name__)


class State(TypedDict):
    storage: Storage
    settings: Settings


def create_app(settings: Settings | None = None) -> Starlette:
    settings = Settings.from_env() if settings is None else settings

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        storage = open_storage(settings)
        try:
            await storage.ensure_indexes()
            logger.info("connected to %s", settings.redacted_uri)
            yield {"storage": storage, "settings": settings}
        finally:
            await storage.close()

    graphql = GraphQLView(
        build_schema(settings), graphql_ide="graphiql" if settings.graphiql else None
    )
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *rest.routes,
        Route("/graphql", graphql, methods=["GET", "POST"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: rest.http_error},
    )


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
