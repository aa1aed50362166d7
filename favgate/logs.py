"""Structured logs: one JSON object per line, each carrying the request id.

``RequestIdMiddleware`` gives every request an id (the client's ``X-Request-ID`` when it
is a sane one, else a fresh uuid4), keeps it in a context variable for the request's
duration, and echoes it in the response's ``X-Request-ID`` header, errors and 404s
included. ``JsonFormatter`` reads that variable, so every line logged while serving a
request (by favgate, Strawberry or uvicorn's access log) names it, and a client's report
of a failed request leads straight to its log lines.

Nothing here logs headers or bodies, and access lines drop the query string: tokens never
reach the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from favgate.apis import Api, refusal
from favgate.errors import InternalError

HEADER = "X-Request-ID"
_HEADER_NAME = HEADER.lower().encode()
MAX_REQUEST_ID_LENGTH = 128
# Visible ASCII only: an id lands in log lines and response headers, so no control
# characters, no spaces, nothing a log viewer could misread.
_SANE_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID_LENGTH}}}")

request_id: ContextVar[str | None] = ContextVar("favgate_request_id", default=None)
logger = logging.getLogger(__name__)
# Lines of uvicorn.error that add nothing to the connection's own (see WebSocketLines).
_SAY_NO_MORE = frozenset(
    {"connection open", "connection closed", "Invalid UTF-8 sequence received from client."}
)


def incoming_request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` if it is sane, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Names each request and echoes the name back (pure ASGI, outermost middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = incoming_request_id(scope)
        reset = request_id.set(rid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                # Appended: the app never sets the field itself. Optional in a websocket.accept.
                message["headers"] = [*message.get("headers", ()), (_HEADER_NAME, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The last line of defence: the routes map their own errors, so this is a bug.
            # Log it here, while the request id is still set, and answer in the
            # documented shape rather than let the server send a bare 500 without the id.
            logger.exception("unexpected error while serving %s", scope.get("path"))
            if started or scope["type"] != "http":
                raise
            response = refusal(Api.of(scope), InternalError(), scope)
            await response(scope, receive, send_with_id)
        finally:
            request_id.reset(reset)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        access = _access_fields(record)
        message = f"{access['method']} {access['path']} {access['status']}" if access else None
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message or record.getMessage(),
            # Read when the line is formatted, which for a stream handler is when it is
            # logged: inside the request's context.
            "request_id": request_id.get(),
            **access,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """uvicorn's access line as fields, its path without the query string."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, full_path, _http_version, status = args
    return {
        "client": client,
        "method": method,
        "path": str(full_path).split("?", 1)[0],
        "status": status,
    }


class WebSocketLines(logging.Filter):
    """One line per WebSocket connection, without its query string or a client's traceback.

    uvicorn logs each connection (``"WebSocket /graphql" [accepted]``) with its query
    string, where a browser client may have put a token; the ``websockets`` package it
    runs logs ``connection open`` and ``connection closed`` besides, which say no more. A
    text frame that is not UTF-8 is the client's fault (closed 1007), which uvicorn logs
    as an error with a traceback, a second line for the connection: dropped too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "uvicorn.error":
            return True
        if record.msg in _SAY_NO_MORE:
            return False
        args = record.args
        if str(record.msg).startswith('%s - "WebSocket %s"') and isinstance(args, tuple):
            record.args = (args[0], str(args[1]).split("?", 1)[0], *args[2:])
        return True


def configure_logging(level: str) -> None:
    """Send every logger, uvicorn's included, through one JSON handler on stderr.

    Start uvicorn with ``log_config=None`` afterwards so that it keeps this setup.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(WebSocketLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
