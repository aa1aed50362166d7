"""SIGTERM drains in-flight requests: a real ``favgate serve`` process, fifty requests
caught half-sent when the signal arrives, every one answered in full and stored, and the
process gone by itself afterwards. Its stderr is JSON lines naming each request's id,
with no token in them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import drop_database, free_port, seed_instance, with_database
from pymongo import MongoClient

from favgate.auth import generate_token
from favgate.config import Settings

pytestmark = pytest.mark.slow

REQUESTS = 50
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
SET_FAVORITE = """
mutation ($number: String!) {
  setFavorite(instance: "main", number: $number, favorite: true) { success chatJid }
}
"""


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    url: str
    uri: str
    database: str
    token: str
    log: Path

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
async def gateway(mongodb_uri: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    database = f"favgate_shutdown_{uuid.uuid4().hex[:12]}"
    uri, token, port = with_database(mongodb_uri, database), generate_token(), free_port()
    await seed_instance(Settings().with_uri(uri), instance_token=token)
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAVGATE_")}
    # A budget no test request can exhaust: this test is about draining, not limits.
    env |= {"MONGODB_URI": uri, "FAVGATE_RATE_LIMIT": "1000000", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "favgate.cli", "serve", "--port", str(port)]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, env=env
        )
    try:
        yield Gateway(proc, f"http://127.0.0.1:{port}", uri, database, token, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await drop_database(uri)


async def wait_until_serving(gateway: Gateway) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        while time.monotonic() < deadline:
            assert gateway.proc.poll() is None, gateway.log.read_text()
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"favgate serve did not start:\n{gateway.log.read_text()}")


class HalfSent:
    """Request bodies that stop halfway until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.halfway = 0
        self.all_halfway = asyncio.Event()

    async def body(self, payload: dict[str, Any]) -> AsyncIterator[bytes]:
        raw = json.dumps(payload).encode()
        yield raw[: len(raw) // 2]
        self.halfway += 1
        if self.halfway == REQUESTS:
            self.all_halfway.set()
        await self.release.wait()
        yield raw[len(raw) // 2 :]


def number(i: int) -> str:
    return f"55119{i:08d}"


async def send(client: httpx.AsyncClient, gate: HalfSent, token: str, i: int) -> httpx.Response:
    headers = {"token": token, "Content-Type": "application/json", "X-Request-ID": f"drain-{i}"}
    if i % 2:  # half REST, half GraphQL
        body = {"query": SET_FAVORITE, "variables": {"number": number(i)}}
        return await client.post("/graphql", content=gate.body(body), headers=headers)
    body = {"number": number(i), "favorite": True}
    return await client.post("/api/chat/favorite/main", content=gate.body(body), headers=headers)


def stored_favorites(uri: str, database: str) -> set[str]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    with client:
        found = client[database].favorites.find({"favorite": True}, {"chat_jid": 1})
        return {doc["chat_jid"] for doc in found}


async def test_sigterm_drains_in_flight_requests(gateway: Gateway) -> None:
    await wait_until_serving(gateway)
    gate = HalfSent()
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=30) as client:
        tasks = [asyncio.create_task(send(client, gate, gateway.token, i)) for i in range(REQUESTS)]
        await asyncio.wait_for(gate.all_halfway.wait(), 10)
        await asyncio.sleep(0.5)  # the server has read every request's head by now
        gateway.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # ... and is shutting down
        gate.release.set()
        responses = await asyncio.gather(*tasks, return_exceptions=True)

    exit_status = await asyncio.to_thread(gateway.proc.wait, EXIT_TIMEOUT)
    assert exit_status == 128 + signal.SIGTERM, gateway.log.read_text()

    answered = {}
    for i, response in enumerate(responses):
        assert isinstance(response, httpx.Response), f"request {i} was dropped: {response!r}"
        assert response.status_code == 200, response.text
        body = response.json()  # complete: it parses
        chat_jid = body["data"]["setFavorite"]["chatJid"] if i % 2 else body["chat_jid"]
        assert chat_jid == f"{number(i)}@s.whatsapp.net"
        answered[i] = (chat_jid, response.headers["x-request-id"])
    stored = await asyncio.to_thread(stored_favorites, gateway.uri, gateway.database)
    assert {chat_jid for chat_jid, _ in answered.values()} <= stored
    assert_logs(gateway, answered)


def assert_logs(gateway: Gateway, answered: dict[int, tuple[str, str]]) -> None:
    """Every stderr line is JSON, and shows the requests answered after shutdown began,
    each under its own request id; no token anywhere."""
    assert gateway.token not in gateway.log.read_text()
    lines = gateway.log_lines()
    shutdown = next(i for i, line in enumerate(lines) if line["message"] == "Shutting down")
    answered_at = {
        line["request_id"]: (i, line["status"])
        for i, line in enumerate(lines)
        if line["logger"] == "uvicorn.access" and line["method"] == "POST"
    }
    for i, (_, request_id) in answered.items():
        assert request_id == f"drain-{i}"
        position, status = answered_at[request_id]
        assert (position > shutdown, status) == (True, 200)
