"""Exact across replicas: four real ``favgate serve`` processes share one database and one
token; 120 concurrent requests spread over them admit exactly the limit, 40."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from helpers import CHAT_JID, free_port, spawn_serve, with_database

from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.storage import InstanceStatus, open_storage

pytestmark = pytest.mark.slow

REPLICAS = 4
LIMIT = 40
REQUESTS = 120
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class Replica:
    """One ``favgate serve`` process on a port of its own, its output in a file."""

    def __init__(self, uri: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.terminated = False
        env = {"MONGODB_URI": uri, "FAVGATE_RATE_LIMIT": str(LIMIT)}
        self.proc = spawn_serve(self.port, env, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def terminate(self) -> None:
        """SIGTERM, once: a second one would cut the graceful shutdown short."""
        if not self.terminated and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self) -> int:
        self.terminate()
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")


async def wait_until_ready(client: httpx.AsyncClient, replica: Replica) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if replica.proc.poll() is not None:
            pytest.fail(f"serve exited with {replica.proc.returncode}:\n{replica.output()}")
        try:
            if (await client.get(f"{replica.url}/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    pytest.fail(f"serve not ready after {START_TIMEOUT:g} s:\n{replica.output()}")


@pytest.fixture
def database_uri(mongodb_uri: str) -> str:
    return with_database(mongodb_uri, f"favgate_replicas_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def token(database_uri: str) -> AsyncIterator[str]:
    """An account token reaching instance ``main``, seeded in the replicas' database."""
    token = generate_token()
    storage = open_storage(Settings().with_uri(database_uri))
    try:
        await storage.ensure_indexes()
        await storage.directory.create_account("acme", hash_token(token))
        await storage.directory.create_instance(
            "main", "acme", InstanceStatus.CONNECTED, hash_token(generate_token())
        )
        yield token
    finally:
        await storage.drop_database()
        await storage.close()


@pytest.fixture
def replicas(database_uri: str, token: str, tmp_path: Path) -> Iterator[list[Replica]]:
    with ExitStack() as stack:
        started = []
        for i in range(REPLICAS):
            replica = Replica(database_uri, tmp_path / f"serve-{i}.log")
            stack.callback(replica.stop)
            started.append(replica)
        yield started
        # A clean stop, checked (uvicorn drains, favgate exits 128 + SIGTERM), all at once;
        # the callbacks then find them gone.
        for replica in started:
            replica.terminate()
        for replica in started:
            assert replica.stop() == 128 + signal.SIGTERM, replica.output()


async def test_replicas_admit_exactly_the_limit(replicas: list[Replica], token: str) -> None:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(wait_until_ready(client, replica) for replica in replicas))

        async def favorite(i: int) -> httpx.Response:
            replica = replicas[i % REPLICAS]
            return await client.post(
                f"{replica.url}/api/chat/favorite/main",
                json={"number": CHAT_JID, "favorite": True},
                headers={"token": token},
            )

        responses = await asyncio.gather(*(favorite(i) for i in range(REQUESTS)))
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == REQUESTS - LIMIT, statuses
    # Every replica took part, and each reports the one shared budget.
    assert {r.url.port for r in responses} == {replica.port for replica in replicas}
    assert {r.headers["x-ratelimit-limit"] for r in responses} == {str(LIMIT)}
    refused = [r for r in responses if r.status_code == 429]
    assert {r.headers["x-ratelimit-remaining"] for r in refused} == {"0"}
    # The first admitted leaves a minute after the end of its second.
    assert all(59 <= int(r.headers["retry-after"]) <= 61 for r in refused)
