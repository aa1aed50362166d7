"""CORS as a browser enforces it: headless Chromium (Debian's, driven by Playwright) opens a
page served from another origin than a real ``favgate serve`` started with
``FAVGATE_CORS_ORIGINS``. From a listed origin, the page's ``fetch`` reaches ``/graphql``
and the REST route with a token, reads the answers, the exposed rate-limit budget and the
request id, and reads a 401 too. From an origin not listed, Chromium blocks the same calls
(``fetch`` rejects with a TypeError) and nothing changes.

Skips only where Chromium is not installed (CI installs it: see ``.ci/run``).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, CHROMIUM, CHROMIUM_FLAGS, Gateway, favgate_serve, needs_chromium
from playwright.async_api import Browser, async_playwright

pytestmark = [needs_chromium, pytest.mark.slow]
RATE_LIMIT = 10
WAIT_MS = 15_000
PAGE = b"<!doctype html><title>A browser app</title><p>app"
FAVORITES = '{ favorites(instance: "main") { totalCount edges { node { chatJid favorite } } } }'

# Runs in the page, as the app's own script would: three calls to the gateway, each
# answer read whole (status, body, exposed headers), or the error fetch rejected with.
CALLS = """
async ({ gateway, token, number }) => {
  async function call(path, token, body) {
    try {
      const response = await fetch(gateway + path, {
        method: "POST",
        headers: { "content-type": "application/json", token },
        body: JSON.stringify(body),
      });
      return {
        status: response.status,
        body: await response.json(),
        remaining: response.headers.get("X-RateLimit-Remaining"),
        requestId: response.headers.get("X-Request-ID"),
      };
    } catch (error) {
      return { rejected: error.name };
    }
  }
  const setFavorite =
    `mutation { setFavorite(instance: "main", number: "${number}", favorite: true) { favorite } }`;
  return {
    graphql: await call("/graphql", token, { query: setFavorite }),
    rest: await call("/api/chat/favorite/main", token, { number, favorite: false }),
    unknownToken: await call("/api/chat/favorite/main", "nope", { number, favorite: false }),
  };
}
"""


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test's output is the gateway's log, not the page server's


@contextmanager
def page_origin() -> Iterator[str]:
    """A static server of the app's page on a free port of 127.0.0.1: an origin of its own."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def listed() -> Iterator[str]:
    with page_origin() as origin:
        yield origin


@pytest.fixture
def unlisted() -> Iterator[str]:
    with page_origin() as origin:
        yield origin


@pytest.fixture
async def gateway(mongodb_uri: str, tmp_path: Path, listed: str) -> AsyncIterator[Gateway]:
    env = {
        "FAVGATE_CORS_ORIGINS": f"https://app.example.com,{listed}",
        "FAVGATE_RATE_LIMIT": str(RATE_LIMIT),
        "FAVGATE_RATE_LIMIT_LEASES": "false",  # every request checks: Remaining is exact
    }
    async with favgate_serve(mongodb_uri, tmp_path / "serve.log", env) as gateway:
        yield gateway


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def calls_from(browser: Browser, origin: str, gateway: Gateway) -> dict[str, Any]:
    """What the page at ``origin`` got from its calls to the gateway."""
    page = await browser.new_page()
    try:
        await page.goto(f"{origin}/", timeout=WAIT_MS)
        arguments = {"gateway": gateway.url, "token": gateway.token, "number": CHAT_JID}
        calls: dict[str, Any] = await page.evaluate(CALLS, arguments)
        return calls
    finally:
        await page.close()


async def favorites(gateway: Gateway) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        response = await client.post(
            "/graphql", json={"query": FAVORITES}, headers={"token": gateway.token}
        )
    listed: dict[str, Any] = response.json()["data"]["favorites"]
    return listed


async def test_a_listed_origin_calls_both_apis(
    browser: Browser, gateway: Gateway, listed: str
) -> None:
    calls = await calls_from(browser, listed, gateway)
    blocked = [name for name, call in calls.items() if "rejected" in call]
    assert blocked == [], f"Chromium blocked the calls of a listed origin: {calls}"
    graphql, rest = calls["graphql"], calls["rest"]
    assert (graphql["status"], graphql["body"]) == (
        200,
        {"data": {"setFavorite": {"favorite": True}}},
    )
    assert (rest["status"], rest["body"]["success"], rest["body"]["favorite"]) == (200, True, False)
    assert rest["body"]["chat_jid"] == CHAT_JID
    # The exposed budget, one request less each time; the request id of each answer.
    assert (graphql["remaining"], rest["remaining"]) == (str(RATE_LIMIT - 1), str(RATE_LIMIT - 2))
    assert graphql["requestId"] and rest["requestId"] and graphql["requestId"] != rest["requestId"]
    # An error answer is readable too: the app can tell a bad token from a network failure.
    assert calls["unknownToken"]["status"] == 401
    assert calls["unknownToken"]["body"] == {
        "success": False,
        "error": {"message": "Invalid token"},
    }
    assert calls["unknownToken"]["requestId"]


async def test_an_unlisted_origin_is_blocked(
    browser: Browser, gateway: Gateway, unlisted: str
) -> None:
    calls = await calls_from(browser, unlisted, gateway)
    assert calls == {
        "graphql": {"rejected": "TypeError"},
        "rest": {"rejected": "TypeError"},
        "unknownToken": {"rejected": "TypeError"},
    }
    # The preflight failed, so the mutation was never sent: nothing was favorited.
    assert await favorites(gateway) == {"totalCount": 0, "edges": []}
