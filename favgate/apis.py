"""The two APIs favgate serves, and how each one says no.

Every HTTP request is classified once, by path, into the API it belongs to: ``REST`` (the
compatibility route, ``/api/chat/favorite...``), ``GRAPHQL`` (``/graphql``) or neither.
Whoever refuses a request (a middleware, the router, a route) renders the refusal here,
in the shape of that API:

- REST: the upstream contract's ``{"success": false, "error": {"message": ...}}``.
- GraphQL: ``{"errors": [{"message", "extensions": {"code"}}]}`` (no ``data``: nothing ran),
  as ``application/graphql-response+json`` when the client accepts it, else
  ``application/json`` (GraphQL over HTTP).

No middleware imports a route module for this: both import this one.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from favgate import metrics
from favgate.errors import FavgateError, InternalError, MethodNotAllowed, NotFound, public_error
from favgate.responses import JSONResponse

logger = logging.getLogger(__name__)

GRAPHQL_PATH = "/graphql"
REST_PREFIX = "/api/chat/favorite"
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_ACCEPT = frozenset({b"accept"})


class Api(enum.Enum):
    REST = "rest"
    GRAPHQL = "graphql"

    @classmethod
    def of(cls, scope: Scope) -> Api | None:
        """The API an HTTP request is for, by its path alone; None for the rest (probes,
        metrics, GraphiQL's assets). The REST API is exactly its routes' paths: a path
        with more segments (``/api/chat/favorite/demo/``) is nobody's, and meets a 404."""
        if scope["type"] != "http":
            return None
        path: str = scope["path"]
        if path == GRAPHQL_PATH:
            return cls.GRAPHQL
        if path == REST_PREFIX or path == REST_PREFIX + "/":
            return cls.REST
        if path.startswith(REST_PREFIX + "/") and "/" not in path[len(REST_PREFIX) + 1 :]:
            return cls.REST
        return None


def header_fields(scope: Scope, names: Collection[bytes]) -> dict[str, str]:
    """The request's header fields among ``names`` (in lower case, as ASGI names them),
    each its first value, as Starlette's ``Headers.get`` reads them; in one pass, without
    the copy of the header list and the encoding of each name asked for that a
    ``Headers`` makes on every request."""
    fields: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in names:
            fields.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return fields


def refusal(api: Api | None, error: FavgateError, scope: Scope) -> Response:
    """``error`` in the shape of the API the request was for; for a path of neither, in
    GraphQL's under ``/graphql/`` (a client's misspelling of its endpoint), else REST's."""
    path: str = scope.get("path", "")
    if api is Api.GRAPHQL or (api is None and path.startswith(GRAPHQL_PATH + "/")):
        return graphql_errors([error_entry(error)], error.status_code, scope, error.headers)
    return rest_error(error)


def public_refusal(api: Api | None, exc: BaseException, scope: Scope) -> Response:
    """Any exception met before or instead of the API's own work: its public error, or
    a masked 500 for a bug (logged here, once, with its traceback)."""
    return refusal(api, public_or_logged(exc, api), scope)


def public_or_logged(exc: BaseException, api: Api | None) -> FavgateError:
    """What a client may see of ``exc``. A bug is logged with its traceback and masked;
    an outage is logged in one line; a client's own error is not logged at all."""
    error = public_error(exc)
    if error is None:
        logger.error("unexpected error", exc_info=exc)
        return InternalError()
    if not isinstance(exc, FavgateError):
        logger.warning("database unavailable: %s", exc)
    metrics.count_database_error(error, api=(api or Api.REST).value)
    return error


def rest_error(error: FavgateError) -> Response:
    body = {"success": False, "error": {"message": error.message}}
    return JSONResponse(body, status_code=error.status_code, headers=error.headers or None)


def error_entry(error: FavgateError) -> dict[str, Any]:
    return {"message": error.message, "extensions": error.extensions}


def graphql_errors(
    errors: Sequence[Mapping[str, Any]],
    status_code: int,
    scope: Scope,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A GraphQL response without ``data``: a request that never reached execution."""
    return graphql_response({"errors": list(errors)}, status_code, media_type(scope), headers)


def graphql_response(
    body: Mapping[str, Any],
    status_code: int,
    media: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return JSONResponse(body, status_code=status_code, headers=headers, media_type=media)


def media_type(scope: Scope) -> str:
    """The response's media type, from ``Accept``: GraphQL's own when the client lists
    it, else JSON (also for a missing ``Accept``, ``*/*`` or anything else)."""
    accept = header_fields(scope, _ACCEPT).get("accept", "")
    for media_range in accept.split(","):
        essence, _, parameters = media_range.partition(";")
        if essence.strip().lower() == GRAPHQL_RESPONSE and not _refused(parameters):
            return GRAPHQL_RESPONSE
    return JSON


def _refused(parameters: str) -> bool:
    """``q=0``: the client lists the type only to refuse it."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value) == 0
            except ValueError:
                return False
    return False


async def http_error(request: Request, exc: Exception) -> Response:
    """The router's own 404 and 405, in the shape of the API the path belongs to."""
    assert isinstance(exc, HTTPException)
    error: FavgateError
    if exc.status_code == 405:
        error = MethodNotAllowed(exc.detail, (exc.headers or {}).get("Allow", ""))
    else:
        error = NotFound(exc.detail)  # the router raises nothing else
    return refusal(Api.of(request.scope), error, request.scope)
