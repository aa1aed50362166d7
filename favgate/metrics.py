"""Prometheus metrics, served on ``GET /metrics``.

The metric objects live at module level on favgate's own ``REGISTRY`` (not the client
library's global one, so nothing else in the process leaks into ``/metrics``), and any
module records into them: ``MetricsMiddleware`` counts and times HTTP requests and 429
refusals, the ``OperationMetrics`` schema extension counts GraphQL operations, the REST
error mapping counts database errors, the subscription code moves
``OPEN_SUBSCRIPTIONS`` and the webhook worker (``favgate.webhooks``) the ``WEBHOOK*``
series. Every app in a process shares them, as it shares the process
(one gateway process, one set of series); tests assert on deltas.

Label values are bounded on purpose: requests are labelled by route *template*
(``/api/chat/favorite/{instance}``), never by raw path, and GraphQL operation names only
when they are short identifiers, so a client cannot grow the series without limit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar, cast

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from favgate.errors import FavgateError, ServiceUnavailable

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # CPU, memory and open files of this process

HTTP_REQUESTS = Counter(
    "favgate_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "favgate_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
GRAPHQL_OPERATIONS = Counter(
    "favgate_graphql_operations",
    "GraphQL operations executed, by type, name and outcome (ok or the error code).",
    ["type", "name", "outcome"],
    registry=REGISTRY,
)
DATABASE_ERRORS = Counter(
    "favgate_database_errors",
    "Requests answered 'Service temporarily unavailable' because the database failed.",
    ["api"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "favgate_rate_limited_requests",
    "Requests refused with 429 Too Many Requests, by route template.",
    ["route"],
    registry=REGISTRY,
)
OPEN_SUBSCRIPTIONS = Gauge(
    "favgate_graphql_subscriptions_open",
    "GraphQL subscriptions currently open on this process.",
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "favgate_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, retried (to be tried again) or "
    "failed (given up after FAVGATE_WEBHOOK_RETRY_HOURS).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOKS_PENDING = Gauge(
    "favgate_webhook_deliveries_pending",
    "Webhook deliveries not yet made, across all replicas (as this one last counted).",
    registry=REGISTRY,
)
WEBHOOKS_OLDEST_PENDING = Gauge(
    "favgate_webhook_oldest_pending_age_seconds",
    "Age of the oldest webhook delivery not yet made; 0 when none is pending.",
    registry=REGISTRY,
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Operation names are chosen by clients: only identifiers get a series of their own, and
# only the first MAX_OPERATION_NAMES of them, so a client cannot grow /metrics unbounded.
MAX_OPERATION_NAMES = 100
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_CODE = re.compile(r"[A-Z][A-Z_]{0,39}")
_operation_names: set[str] = set()


@dataclass(slots=True)
class _Exchange:
    """What the GraphQL layer tells the middleware about the request in flight."""

    rate_limited: bool = False


_exchange: ContextVar[_Exchange | None] = ContextVar("favgate_metrics_exchange", default=None)


class MetricsMiddleware:
    """Counts and times every HTTP request (pure ASGI: no per-request task or copy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response
        exchange = _Exchange()
        reset = _exchange.set(exchange)

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            _exchange.reset(reset)
            _record(scope, status, time.perf_counter() - started, exchange)


def _record(scope: Scope, status: int, seconds: float, exchange: _Exchange) -> None:
    route = route_label(scope)
    method = scope["method"] if scope["method"] in _METHODS else "other"
    _child(HTTP_REQUESTS, route, method, str(status)).inc()
    _child(HTTP_LATENCY, route, method).observe(seconds)
    if status == 429 or exchange.rate_limited:
        RATE_LIMITED.labels(route).inc()


# labels() validates its values and takes a lock on every call. Every series favgate
# labels is bounded (route templates, methods, statuses, ``operation_name_label``,
# ``_CODE``), so each child is looked up once and kept: no more than the registry holds.
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}
Metric = TypeVar("Metric", bound=MetricWrapperBase)


def _child(metric: Metric, *labels: str) -> Metric:
    """``metric.labels(*labels)``, looked up once."""
    key = (metric, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return cast(Metric, child)


def count_database_error(error: FavgateError, api: str) -> None:
    """Count ``error`` if it is a database failure answered as 503."""
    if isinstance(error, ServiceUnavailable):
        DATABASE_ERRORS.labels(api).inc()


def route_label(scope: Scope) -> str:
    """The template of the route that matched, never the raw path:
    ``/api/chat/favorite/{instance}`` is one series, whatever the instance."""
    route = scope.get("route") or _route_for(scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


def _route_for(scope: Scope) -> BaseRoute | None:
    """The route a request answered before routing (a 429, a 413) was meant for."""
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return route  # type: ignore[no-any-return]
    return None


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_PLAIN_0_0_4)


routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]


class OperationMetrics(SchemaExtension):
    """Counts each GraphQL operation by type, name and outcome.

    List it first among the schema's extensions: its ``on_operation`` then exits last,
    after ``PublicErrors`` has turned exceptions into coded errors. The HTTP transport
    (``favgate.graphql_http``) runs no extension and calls ``count_operation`` itself.
    """

    def on_operation(self) -> Iterator[None]:
        outcome = "error"  # a document that does not parse is thrown through this hook
        try:
            yield
            outcome = _outcome(self.execution_context.result)
        finally:
            context = self.execution_context
            _count(_operation_type(context), context.operation_name, outcome)


def count_operation(operation_type: str, name: str | None, result: object) -> None:
    """Count an operation that ended with ``result``, as ``OperationMetrics`` would."""
    _count(operation_type, name, _outcome(result))


def count_refused(code: str) -> None:
    """Count a GraphQL request refused before it ran: its operation is not known then."""
    _count("unknown", None, code if _CODE.fullmatch(code) else "error")


def _count(operation_type: str, name: str | None, outcome: str) -> None:
    _child(GRAPHQL_OPERATIONS, operation_type, operation_name_label(name), outcome).inc()
    if outcome == "SERVICE_UNAVAILABLE":
        DATABASE_ERRORS.labels("graphql").inc()
    exchange = _exchange.get()
    if outcome == "RATE_LIMITED" and exchange is not None:
        exchange.rate_limited = True  # counted once, by the middleware


def _operation_type(context: ExecutionContext) -> str:
    try:
        return context.operation_type.value
    except RuntimeError:  # a document that did not parse, or names no operation it holds
        return "unknown"


def operation_name_label(name: str | None) -> str:
    if name is None:
        return "anonymous"
    if name in _operation_names:
        return name
    if _IDENTIFIER.fullmatch(name) and len(_operation_names) < MAX_OPERATION_NAMES:
        _operation_names.add(name)
        return name
    return "other"


def _outcome(result: object) -> str:
    """``ok``, else the code of the first coded error (``error`` when it has none)."""
    for error in getattr(result, "errors", None) or ():
        code = (getattr(error, "extensions", None) or {}).get("code")
        if isinstance(code, str) and _CODE.fullmatch(code):
            return code
    return "error" if getattr(result, "errors", None) else "ok"
