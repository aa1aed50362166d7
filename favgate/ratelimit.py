"""Rate limiting: one budget per token, shared by the REST route and GraphQL.

A token may make ``limit`` requests in any ``window`` seconds (default 100 per 60 s,
``FAVGATE_RATE_LIMIT``). The state lives in MongoDB (``favgate.storage.ratelimits``, a
sliding window log updated atomically in one round trip), so that every gateway process
draws on the same budget and together they never admit more than the limit.

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
the latest admitted request leaves the window (0 when none is in it). ``Retry-After``
is the number of seconds until the refused request would fit. Both are rounded up.

The middleware leaves the limiter and the token's key in the request's state
(``rate_limiter``, ``rate_limit_key``), so that an operation worth more than one request
charges the rest itself: ``await limiter.acquire(key, cost=n - 1)``. The response then
carries the budget as it stands after the last charge.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from favgate import metrics, rest
from favgate.auth import MAX_TOKEN_LENGTH, hash_token, token_from_headers
from favgate.errors import RateLimited, public_error
from favgate.storage import RateLimits, Storage, Window

logger = logging.getLogger(__name__)

POLICY_NAME = "default"
WINDOW_SECONDS = 60

Api = Literal["rest", "graphql"]


@dataclass(frozen=True, slots=True)
class Policy:
    limit: int
    window: int = WINDOW_SECONDS  # seconds; small in tests


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    limit: int
    remaining: int
    reset_seconds: int
    retry_after: int | None  # None when admitted
    window: int = WINDOW_SECONDS

    def headers(self) -> dict[str, str]:
        fields = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w={self.window}',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.reset_seconds}',
        }
        if self.retry_after is not None:
            fields["Retry-After"] = str(self.retry_after)
        return fields


class RateLimiter:
    """Charges keys against one policy. ``last`` is the latest decision it made."""

    def __init__(self, store: RateLimits, policy: Policy) -> None:
        self.store = store
        self.policy = policy
        self.last: Decision | None = None

    async def acquire(self, key: str, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``key``'s budget if they are all there; one round trip."""
        now = datetime.now(UTC)
        window = timedelta(seconds=self.policy.window)
        hits = await self.store.hit(key, now, window, self.policy.limit, cost)
        self.last = decide(hits, self.policy, cost, now)
        return self.last


def decide(hits: Window, policy: Policy, cost: int, now: datetime) -> Decision:
    """The decision a window implies, with the times clients are told to wait."""
    window = timedelta(seconds=policy.window)
    expiries = [at + window for at in hits.hits]  # oldest first
    reset = _seconds_until(expiries[-1], now) if expiries else 0
    retry_after = None
    if not hits.admitted:
        # The refused units fit once this many of the hits have left the window; a cost
        # above the limit never fits, and is told to wait a whole window.
        leaving = len(expiries) + cost - policy.limit
        fits_at = expiries[leaving - 1] if 0 < leaving <= len(expiries) else now + window
        retry_after = max(1, _seconds_until(fits_at, now))
    return Decision(
        admitted=hits.admitted,
        limit=policy.limit,
        remaining=max(0, policy.limit - len(expiries)),
        reset_seconds=reset,
        retry_after=retry_after,
        window=policy.window,
    )


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(0, math.ceil((moment - now).total_seconds()))


class RateLimitMiddleware:
    """Charges each REST and GraphQL HTTP request of a known token (pure ASGI)."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

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
        if await storage.directory.find_caller(key) is None:
            return None
        limiter = RateLimiter(storage.rate_limits, self.policy)
        decision = await limiter.acquire(key)
        state.update(rate_limiter=limiter, rate_limit_key=key)
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
            MutableHeaders(scope=message).update(limiter.last.headers())
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
