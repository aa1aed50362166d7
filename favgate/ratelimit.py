"""Rate limiting: one budget per token, shared by the REST route and GraphQL.

A token may make ``limit`` requests in any ``window`` seconds (default 100 per 60 s,
``FAVGATE_RATE_LIMIT``). The state lives in MongoDB (``favgate.storage.ratelimits``, a
sliding window of one-second buckets updated atomically), so that every gateway process
draws on the same budget and together they never admit more than the limit. The process's
``favgate.limiter.Limiter`` (the app's lifespan owns it) decides, with one round trip per
request or fewer.

``RateLimitMiddleware`` charges ``POST /api/chat/...`` and ``/graphql`` HTTP requests
one unit each, before the app runs. A request without a known token is not charged: the
app answers it 401, and no token's budget pays for it. Refusals answer 429 with
``Retry-After``; an unreachable store answers like any database outage (fail closed).

Every charged response carries the budget, in the de facto fields and in those of the
IETF draft (httpapi ratelimit-headers), for example::

    X-RateLimit-Limit: 100
    X-RateLimit-Remaining: 57
    X-RateLimit-Reset: 12
    RateLimit-Policy: "default";q=100;w=60
    RateLimit: "default";r=57;t=12

Reset (``t``) is the number of seconds until the whole budget is back, that is, until
the latest admitted request leaves the window (0 when none is in it); a request counts
until a window after the end of its one-second bucket, so Reset can be the window plus
one. ``Retry-After`` is the number of seconds until the refused request would fit. Both
are rounded up.

The middleware leaves the limiter, the token's key and its owner in the request's state
(``rate_limiter``, ``rate_limit_key``, ``caller``: the routes do not look the owner up
again), so that an operation worth more than one request charges the rest itself:
``await limiter.acquire(key, cost=n - 1)``. The response then carries the budget as it
stands after the last charge.
"""

from __future__ import annotations

import logging
from typing import Literal

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from favgate import metrics, rest
from favgate.auth import MAX_TOKEN_LENGTH, hash_token, token_from_headers
from favgate.errors import RateLimited, public_error
from favgate.limiter import Decision, Limiter
from favgate.storage import Storage

logger = logging.getLogger(__name__)

Api = Literal["rest", "graphql"]


class RateLimiter:
    """The process's limiter as one request sees it: it remembers the last decision, for
    the headers of the request's response."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self.last: Decision | None = None

    async def acquire(self, key: str, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``key``'s budget if they are all there."""
        self.last = await self.limiter.acquire(key, cost)
        return self.last


class RateLimitMiddleware:
    """Charges each REST and GraphQL HTTP request of a known token (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = _limited_api(scope)
        key = _token_key(scope) if api is not None else None
        if api is None or key is None:
            await self.app(scope, receive, send)
            return
        try:
            charged = await self._charge(scope, key)
        except Exception as exc:
            if public_error(exc) is None:
                raise
            await error_response(api, exc)(scope, receive, send)
            return
        if charged is None:  # unknown token: the app answers 401, uncharged
            await self.app(scope, receive, send)
            return
        limiter, decision = charged
        if decision.admitted:
            await self.app(scope, receive, _with_budget(send, limiter))
            return
        response = error_response(api, RateLimited())
        response.headers.update(decision.headers())
        await response(scope, receive, send)

    async def _charge(self, scope: Scope, key: str) -> tuple[RateLimiter, Decision] | None:
        """Charge ``key`` once, unless no caller owns it (None)."""
        state = scope.setdefault("state", {})
        storage: Storage = state["storage"]
        caller = await storage.directory.find_caller(key)
        if caller is None:
            return None
        limiter = RateLimiter(state["limiter"])
        decision = await limiter.acquire(key)
        state.update(rate_limiter=limiter, rate_limit_key=key, caller=caller)
        return limiter, decision


def _limited_api(scope: Scope) -> Api | None:
    """Which API an HTTP request is for, if it is one that is charged."""
    if scope["type"] != "http":
        return None
    path: str = scope["path"]
    if path == "/graphql":
        return "graphql"
    if scope["method"] == "POST" and (path == "/api/chat" or path.startswith("/api/chat/")):
        return "rest"
    return None


def _token_key(scope: Scope) -> str | None:
    """The key of the request's token: its hash. None without a plausible token."""
    token = token_from_headers(Headers(scope=scope))
    if token is None or len(token) > MAX_TOKEN_LENGTH:
        return None
    return hash_token(token)


def _with_budget(send: Send, limiter: RateLimiter) -> Send:
    """``send``, adding the budget after the last charge to the response's head."""

    async def send_with_budget(message: Message) -> None:
        if message["type"] == "http.response.start" and limiter.last is not None:
            # Appended as they are: no response of the app sets these fields itself.
            message["headers"] = [*message.get("headers", ()), *limiter.last.raw_headers()]
        await send(message)

    return send_with_budget


def error_response(api: Api, exc: BaseException) -> Response:
    """A request refused before the app ran, in the shape of its API."""
    if api == "rest":
        return rest.error_response(exc)
    error = public_error(exc)
    assert error is not None  # the middleware only answers public errors itself
    if not isinstance(exc, RateLimited):
        logger.warning("database unavailable: %s", exc)
        metrics.count_database_error(error, api="graphql")
    # A refusal is an HTTP-level signal (429 and Retry-After) that clients and proxies act
    # on. An outage answers as an outage met during execution does (200, data null), so
    # that GraphQL clients see one shape for it wherever it happens.
    status = error.status_code if isinstance(error, RateLimited) else 200
    body = {"data": None, "errors": [{"message": error.message, "extensions": error.extensions}]}
    return JSONResponse(body, status_code=status)
