"""CORS for browser apps on other origins: ``FAVGATE_CORS_ORIGINS``, a list of exact origins.

Starlette's ``CORSMiddleware`` does the work, for the two APIs only (``/graphql`` and the
REST route ``POST /api/chat/favorite/{instance}``): health checks, metrics and the docs
stay same-origin. An allowed origin may send GET and POST with the headers favgate reads
(the token, in ``token`` or ``Authorization``, and ``X-Request-ID``) and may read the
rate-limit headers and the request id of the answer. No credentials: favgate
authenticates by token, never by cookie, so a page of another origin can only spend a
token it already holds.

The app places this middleware outside the body limit and the rate limiter: a preflight
``OPTIONS`` is answered here, uncharged and before the router (which would answer 405),
and their refusals (413, 415, 429), like the app's own errors (401), carry the CORS headers
so that the browser lets the page read them. With no origins configured the app does not
install it, and no response carries a CORS header.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from favgate.apis import Api

ALLOW_METHODS = ("GET", "POST")
ALLOW_HEADERS = ("content-type", "token", "authorization", "x-request-id")
EXPOSE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "X-Request-ID",
)


class ApiCorsMiddleware:
    """``CORSMiddleware`` for requests to the APIs; every other request passes untouched."""

    def __init__(self, app: ASGIApp, origins: Collection[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=ALLOW_METHODS,
            allow_headers=ALLOW_HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSE_HEADERS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if Api.of(scope) is not None:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
