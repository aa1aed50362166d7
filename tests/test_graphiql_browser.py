"""GraphiQL in a real headless browser, with the internet cut off: Debian's ``chromium``,
driven by Playwright, opens ``/graphql`` on a real uvicorn server, finds the example
document and the token header, runs the example's mutation and query with a real token,
and shows their results. Every request the page makes goes to favgate; any other is
refused, and none is even attempted.

Skips only where Chromium is not installed (CI installs it: see ``.ci/run``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from helpers import CHROMIUM, CHROMIUM_FLAGS, free_port, needs_chromium, seed_instance
from playwright.async_api import ConsoleMessage, Page, Route, async_playwright

from favgate.app import create_app
from favgate.auth import generate_token
from favgate.config import Settings
from favgate.storage import open_storage

pytestmark = [needs_chromium, pytest.mark.slow]
WAIT_MS = 15_000
UNAUTHORIZED = "the server responded with a status of 401"
EDITOR_VALUE = "(selector) => document.querySelector(selector).CodeMirror.getValue()"
SET_EDITOR_VALUE = (
    "([selector, value]) => document.querySelector(selector).CodeMirror.setValue(value)"
)
QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESULT = ".result-window .CodeMirror"


@dataclass
class Served:
    origin: str
    token: str


@pytest.fixture
async def served(mongodb_uri: str) -> AsyncIterator[Served]:
    """A real uvicorn server on a free port, on a database of its own."""
    settings = Settings(graphiql=True).with_uri(mongodb_uri)
    settings = settings.replace(database=f"favgate_browser_{generate_token()[:8].lower()}")
    token = generate_token()
    await seed_instance(settings, instance_token=token, instance="demo")
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn did not start"
            await asyncio.sleep(0.05)
        yield Served(f"http://127.0.0.1:{port}", token)
    finally:
        server.should_exit = True
        await task
        storage = open_storage(settings)
        await storage.drop_database()
        await storage.close()


@dataclass
class Traffic:
    """Every request the page made; those to any other origin are refused."""

    origin: str
    requested: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        # The refusal without a token is a 401, which Chromium reports as a failed load.
        if message.type == "error" and UNAUTHORIZED not in message.text:
            self.problems.append(message.text)

    async def route(self, route: Route) -> None:
        url = route.request.url
        self.requested.append(url)
        if url.startswith((f"{self.origin}/", "data:")):
            await route.continue_()
        else:
            self.refused.append(url)
            await route.abort("internetdisconnected")


async def run_operation(page: Page, name: str) -> dict[str, Any]:
    """Run the example's operation ``name`` with the ▶ button; its result, parsed."""
    await page.evaluate(SET_EDITOR_VALUE, [RESULT, ""])
    await page.click(".graphiql-execute-button")
    # Two operations in the document: GraphiQL asks which one to run.
    await page.get_by_role("menuitem", name=name, exact=True).click()
    await page.wait_for_function(
        f"() => /\"(data|errors)\"/.test(document.querySelector('{RESULT}').CodeMirror.getValue())",
        timeout=WAIT_MS,
    )
    result: dict[str, Any] = json.loads(await page.evaluate(EDITOR_VALUE, RESULT))
    return result


async def test_graphiql_runs_a_query_offline(served: Served, tmp_path: Path) -> None:
    traffic = Traffic(served.origin)
    async with async_playwright() as playwright:
        # A fresh profile of the test's own: no cache, no stored GraphiQL state.
        context = await playwright.chromium.launch_persistent_context(
            tmp_path / "profile",
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            await context.route("**/*", traffic.route)
            page = await context.new_page()
            page.on("console", traffic.console)
            page.on("pageerror", lambda error: traffic.problems.append(str(error)))
            await page.goto(f"{served.origin}/graphql", timeout=WAIT_MS)
            await page.wait_for_selector(QUERY_EDITOR, timeout=WAIT_MS)
            try:
                await exercise(page, served)
            finally:
                await page.screenshot(path=tmp_path / "graphiql.png")
        finally:
            await context.close()
    assert traffic.refused == [], "the page reached for another host"
    assert traffic.problems == [], "the page logged errors (a CSP violation, a script error?)"
    assert f"{served.origin}/graphiql/static/graphiql.min.js?v=" in " ".join(traffic.requested)


async def exercise(page: Page, served: Served) -> None:
    document = await page.evaluate(EDITOR_VALUE, QUERY_EDITOR)
    assert "mutation SetFavorite {" in document and "query Favorites {" in document
    headers = json.loads(await page.evaluate(EDITOR_VALUE, HEADERS_EDITOR))
    assert headers == {"token": "<paste your token>"}

    # The placeholder is no token: the API says so.
    refused = await run_operation(page, "Favorites")
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    await page.evaluate(SET_EDITOR_VALUE, [HEADERS_EDITOR, json.dumps({"token": served.token})])
    favorited = await run_operation(page, "SetFavorite")
    assert favorited["data"]["setFavorite"] == {
        "success": True,
        "message": "Chat favorited successfully",
        "chatJid": "5511999999999@s.whatsapp.net",
        "messageId": None,
        "favorite": True,
        "type": "CHAT",
    }
    listed = (await run_operation(page, "Favorites"))["data"]["favorites"]
    assert listed["totalCount"] == 1
    [edge] = listed["edges"]
    assert edge["node"]["chatJid"] == "5511999999999@s.whatsapp.net"
    # ... and the result pane shows it to the person at the keyboard.
    await page.get_by_text('"5511999999999@s.whatsapp.net"').first.wait_for(timeout=WAIT_MS)
