"""Exact across replicas: four real ``favgate serve`` processes share one database and one
token; 120 concurrent requests spread over them admit exactly the limit, 40."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from helpers import CHAT_JID, ServeProcess, with_database

from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.storage import InstanceStatus, open_storage

pytestmark = pytest.mark.slow

REPLICAS = 4
LIMIT = 40
REQUESTS = 120


class Replica(ServeProcess):
    """One ``favgate serve`` process on the replicas' database, its output in ``log``."""

    def __init__(self, uri: str, log: Path) -> None:
        super().__init__({"MONGODB_URI": uri, "FAVGATE_RATE_LIMIT": str(LIMIT)}, log)


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
        await asyncio.gather(*(replica.wait_until_ready(client) for replica in replicas))

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
