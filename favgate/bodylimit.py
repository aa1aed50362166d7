"""Hostile request bodies, refused before any route (or the rate limiter) reads them.

A pure ASGI middleware for every HTTP request:

- **415** ``UnsupportedMediaType`` for a ``POST`` to the REST route or ``/graphql`` whose
  ``Content-Type`` is not ``application/json`` (parameters such as ``charset`` are
  allowed): every body favgate reads is JSON. For ``/graphql`` this is also the CSRF
  defence: a browser sends a cross-site request without a CORS preflight only as a form
  or ``text/plain``, and a ``multipart/form-data`` upload is never read.
- **413** ``PayloadTooLarge`` for a body over ``max_body_bytes``: refused on its
  ``Content-Length`` before a byte is read, else while it streams in (a chunked body has
  no length). The body, at most the cap, is buffered here and handed on to the app whole.

Refusals take the shape of the request's API (``favgate.apis``), with the same HTTP status.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from favgate.apis import Api, header_fields, refusal
from favgate.errors import FavgateError, PayloadTooLarge, UnsupportedMediaType

JSON = "application/json"
_CHECKED = frozenset({b"content-type", b"content-length"})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_headers(scope, self.max_body_bytes)
            body = await read_body(receive, self.max_body_bytes)
        except FavgateError as exc:
            await refusal(Api.of(scope), exc, scope)(scope, receive, send)
            return
        if body is not None:  # else the client has gone: there is no one to answer
            await self.app(scope, replay(body, receive), send)


def check_headers(scope: Scope, max_body_bytes: int) -> None:
    """The checks the headers alone decide: media type first, then declared length."""
    headers = header_fields(scope, _CHECKED)
    if reads_json(scope) and not is_json(headers.get("content-type")):
        raise UnsupportedMediaType()
    length = headers.get("content-length", "")
    # A malformed length is left to the server; the streaming count still holds.
    if length.isascii() and length.isdigit() and _over(length, max_body_bytes):
        raise PayloadTooLarge()


def _over(digits: str, cap: int) -> bool:
    """Whether a length of ``digits`` is over ``cap``: compared as text first, since a
    client may send more digits than int() converts (4,300)."""
    digits = digits.lstrip("0") or "0"
    return len(digits) > len(str(cap)) or int(digits) > cap


def reads_json(scope: Scope) -> bool:
    """A POST to either API: every body they read is JSON. Elsewhere a POST meets the
    router's 404 or 405 first."""
    return scope["method"] == "POST" and Api.of(scope) is not None


def is_json(content_type: str | None) -> bool:
    """``application/json``, in any case, with or without parameters."""
    if content_type is None:
        return False
    essence = content_type.partition(";")[0].strip().lower()
    return essence == JSON


async def read_body(receive: Receive, max_body_bytes: int) -> bytes | None:
    """The whole body, or ``PayloadTooLarge`` as soon as it passes the cap; None if the
    client disconnects first."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_body_bytes:
            raise PayloadTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the buffered body, then the server's messages
    (``http.disconnect``) as they come."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
