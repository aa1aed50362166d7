"""Acknowledged means durable: the database process is killed (``kill -9``) under a load
of favorites and restarted on the same data. Every favorite the gateway acknowledged
(200) with the default write concern (``j: true``) is still there, nothing is stored
twice, and the same gateway serves again without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import seed_instance, serving
from pymongo import MongoClient

from favgate.auth import generate_token
from favgate.config import Settings
from favgate.embedded import ServerProcess

pytestmark = pytest.mark.slow

WORKERS = 8
LOAD_BEFORE_KILL = 1.0  # seconds of load before the kill
DOWN = 1.5  # seconds the database stays down: longer than the gateway's timeout below
RECOVERY_LIMIT = 20.0


def chat(i: int) -> str:
    return f"55118{i:08d}@s.whatsapp.net"


@dataclass
class Load:
    """Distinct favorites sent by concurrent workers, and how each was answered."""

    client: httpx.AsyncClient
    token: str
    next_number: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def favorite(self, i: int) -> httpx.Response:
        return await self.client.post(
            "/api/chat/favorite/main",
            json={"number": chat(i), "favorite": True},
            headers={"token": self.token},
        )

    async def worker(self) -> None:
        while not self.stop.is_set():
            i, self.next_number = self.next_number, self.next_number + 1
            response = await self.favorite(i)
            self.statuses[i] = response.status_code
            if response.status_code == 200:
                assert response.json()["chat_jid"] == chat(i)
            else:  # the outage, in the documented shape
                assert response.status_code == 503, response.text
                await asyncio.sleep(0.05)

    def acknowledged(self) -> set[int]:
        return {i for i, status in self.statuses.items() if status == 200}

    def since(self, mark: int) -> list[int]:
        return [self.statuses[i] for i in range(mark, self.next_number) if i in self.statuses]


def stored(uri: str) -> list[dict[str, Any]]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    with client:
        return list(client["favgate"].favorites.find({}, {"_id": 0, "chat_jid": 1, "type": 1}))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(storage_path=tmp_path / "data", log_path=tmp_path / "server.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def test_acknowledged_favorites_survive_kill_9(server: ServerProcess) -> None:
    settings = Settings(database_timeout_ms=500, rate_limit=10**9).with_uri(server.uri)
    assert (settings.write_concern_w, settings.write_journal) == (1, True)  # the defaults
    token = generate_token()
    await seed_instance(settings, instance_token=token)
    async with serving(settings) as client:
        load = Load(client, token)
        workers = [asyncio.create_task(load.worker()) for _ in range(WORKERS)]
        await asyncio.sleep(LOAD_BEFORE_KILL)
        await asyncio.to_thread(server.kill)  # SIGKILL, mid-write
        killed_at = load.next_number
        await asyncio.sleep(DOWN)
        await asyncio.to_thread(server.start)  # same data directory, same port
        restarted_at = load.next_number
        recovered = await wait_for(lambda: 200 in load.since(restarted_at), RECOVERY_LIMIT)
        load.stop.set()
        await asyncio.gather(*workers)
        acknowledged = load.acknowledged()
        # Idempotent retries of every acknowledged favorite store nothing new.
        for i in sorted(acknowledged)[:: max(1, len(acknowledged) // 50)]:
            assert (await load.favorite(i)).status_code == 200

    assert len([i for i in acknowledged if i < killed_at]) > 20, "too little load to prove much"
    # Requests in flight at the kill, and those sent while it was down, got 503.
    assert 503 in load.since(killed_at - WORKERS), "the kill did not interrupt the load"
    assert load.since(restarted_at)[-1] == 200
    print(f"{len(acknowledged)} acknowledged; served again {recovered:.1f} s after restart")

    records = await asyncio.to_thread(stored, server.uri)
    chats = [record["chat_jid"] for record in records]
    assert len(chats) == len(set(chats)), "a favorite was stored twice"
    missing = {chat(i) for i in acknowledged} - set(chats)
    assert not missing, f"{len(missing)} acknowledged favorites were lost: {sorted(missing)[:5]}"


async def wait_for(condition: Any, limit: float) -> float:
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < limit, f"the gateway did not serve again within {limit:g} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started
