"""Structured logs and request ids: ``X-Request-ID`` honoured when sane, generated
otherwise, echoed on every response; every log line of a request names it; JSON lines;
tokens never logged. (The real ``favgate serve`` process's logs: tests/test_shutdown.py.)"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, Tenants
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from favgate.logs import JsonFormatter, RequestIdMiddleware, configure_logging, request_id

GENERATED = re.compile(r"[0-9a-f]{32}")


class Captured:
    """Everything logged while it is installed, as the JSON lines favgate writes."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonFormatter())
    # The test's own HTTP client logs the URLs it requests: those lines are not favgate's.
    handler.addFilter(lambda record: not record.name.startswith(("httpx", "httpcore")))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# --- Request ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/nowhere", 404),
        ("DELETE", "/healthz", 405),
        ("POST", "/api/chat/favorite/main", 401),
        ("POST", "/graphql", 401),
    ],
)
async def test_a_sane_request_id_is_echoed_on_every_response(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    rid = "req-2024.01:abc_DEF/42"
    body = {"query": "{ __typename }"} if path == "/graphql" else {"favorite": True}
    response = await client.request(method, path, json=body, headers={"X-Request-ID": rid})
    assert response.status_code == status
    assert response.headers.get_list("x-request-id") == [rid]


async def test_a_request_id_is_generated_when_none_is_sent(client: httpx.AsyncClient) -> None:
    ids = [(await client.get("/healthz")).headers["x-request-id"] for _ in range(2)]
    assert all(GENERATED.fullmatch(rid) for rid in ids), ids
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    "sent",
    [
        "x" * 129,  # too long
        "two words",  # a space
        "",  # empty
        "tab\tinside",  # a control character
        "caf\xe9",  # not ASCII
    ],
)
async def test_an_unfit_request_id_is_replaced(client: httpx.AsyncClient, sent: str) -> None:
    headers = [(b"X-Request-ID", sent.encode("latin-1"))]
    response = await client.get("/healthz", headers=headers)
    assert GENERATED.fullmatch(response.headers["x-request-id"])


async def test_the_longest_sane_request_id_is_kept(client: httpx.AsyncClient) -> None:
    rid = "r" * 128
    response = await client.get("/healthz", headers={"X-Request-ID": rid})
    assert response.headers["x-request-id"] == rid


async def test_a_websocket_handshake_carries_the_request_id_too() -> None:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(request_id.get() or "")
        await websocket.close()

    app = Starlette(
        routes=[WebSocketRoute("/ws", echo)], middleware=[Middleware(RequestIdMiddleware)]
    )
    # Spoken to in ASGI messages directly, as a server would.
    scope = {
        "type": "websocket",
        "path": "/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-request-id", b"ws-1")],
        "subprotocols": [],
    }
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    accept, text, _close = sent
    assert accept["type"] == "websocket.accept"
    assert (b"x-request-id", b"ws-1") in accept["headers"]
    assert text["text"] == "ws-1"  # the id is the connection's context


# --- Log lines ------------------------------------------------------------------------------


def failing_app() -> Starlette:
    """A route that logs, then fails with an exception nothing maps."""

    async def fail(request: Request) -> Response:
        logging.getLogger("favgate.test").info("working on %s", request.url.path)
        raise RuntimeError("boom")

    return Starlette(routes=[Route("/fail", fail)], middleware=[Middleware(RequestIdMiddleware)])


async def test_every_line_of_a_request_names_it_even_a_crash(captured: Captured) -> None:
    transport = httpx.ASGITransport(app=failing_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as client:
        response = await client.get("/fail", headers={"X-Request-ID": "crash-1"})
    # The bug answers in the documented shape, with the id to quote in a report.
    assert response.status_code == 500
    assert response.json() == {"success": False, "error": {"message": "Internal server error"}}
    assert response.headers["x-request-id"] == "crash-1"
    working, crash = (line for line in captured.lines() if line["logger"].startswith("favgate"))
    assert working["message"] == "working on /fail"
    assert crash["level"] == "ERROR"
    assert crash["message"] == "unexpected error while serving /fail"
    assert "RuntimeError: boom" in crash["exception"]
    assert working["request_id"] == crash["request_id"] == "crash-1"


async def test_lines_outside_requests_have_no_request_id(captured: Captured) -> None:
    logging.getLogger("favgate.test").warning("between requests")
    [line] = captured.lines()
    assert line["request_id"] is None
    assert set(line) == {"time", "level", "logger", "message", "request_id"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])


async def test_tokens_never_reach_the_log(
    client: httpx.AsyncClient, tenants: Tenants, captured: Captured
) -> None:
    unknown = "unknown-" + tenants.rival_token[::-1]
    for token in (tenants.main_token, tenants.acme_token, unknown):
        await client.post(
            "/api/chat/favorite/main",
            json={"number": CHAT_JID, "favorite": True},
            headers={"token": token},
        )
        await client.post(
            "/graphql",
            json={"query": '{ favorites(instance: "main") { totalCount } nope }'},
            headers={"Authorization": f"Bearer {token}"},
        )
        await client.post(f"/api/chat/favorite/main?token={token}", json={"favorite": "yes"})
    assert captured.lines(), "nothing was logged: the test would prove nothing"
    for token in (tenants.main_token, tenants.acme_token, unknown):
        assert token not in captured.text()


# --- The formatter and the set-up -------------------------------------------------------


def access_record(path: str) -> logging.LogRecord:
    """A line of uvicorn's access log, as uvicorn makes it."""
    args = ("127.0.0.1:5000", "POST", path, "1.1", 200)
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
    )


def test_access_lines_are_fields_without_the_query_string() -> None:
    line = json.loads(JsonFormatter().format(access_record("/graphql?token=s3cret&x=1")))
    assert line["message"] == "POST /graphql 200"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/graphql", 200)
    assert "s3cret" not in json.dumps(line)


def test_exceptions_are_one_field_of_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord(
            "favgate", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    text = JsonFormatter().format(record)
    assert "\n" not in text
    assert "ValueError: bad\nthing" in json.loads(text)["exception"]


@pytest.fixture
def pristine_logging() -> Iterator[None]:
    root = logging.getLogger()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    saved = [(logging.getLogger(n), logging.getLogger(n).handlers[:]) for n in names]
    saved_root = (root.handlers[:], root.level)
    try:
        yield
    finally:
        root.handlers[:], level = saved_root
        root.setLevel(level)
        for logger, handlers in saved:
            logger.handlers[:] = handlers


def test_configure_logging_sends_everything_through_json(
    pristine_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler(sys.stderr))
    configure_logging("warning")
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    logging.getLogger("favgate.app").info("below the level")
    logging.getLogger("favgate.app").error("from favgate")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("uvicorn.error", "from uvicorn"),
        ("favgate.app", "from favgate"),
    ]
