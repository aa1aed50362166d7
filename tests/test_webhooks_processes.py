"""Webhooks across real ``favgate serve`` processes: deliveries pending when a gateway is
killed (``kill -9``) are made after a restart, changes made while no gateway ran are
delivered too, and two gateways sharing a database deliver each event once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import ServeProcess, free_port, with_database
from pymongo import MongoClient
from webhook_receiver import Receiver

from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.storage import FavoriteTarget, FavoriteType, InstanceStatus, Storage, open_storage
from favgate.webhooks.signing import generate_secret

pytestmark = pytest.mark.slow

QUIET = 1.0  # seconds of silence that show nothing more came
# The killed gateway's leases (the relay's, 10 s; an attempt's, 15 s) must run out first.
RESTART_TIMEOUT = 40.0
CHATS = [f"55118{i:08d}@s.whatsapp.net" for i in range(40)]


class Gateway(ServeProcess):
    """One ``favgate serve`` process on the test's database, output appended to ``log``."""

    def __init__(self, uri: str, log: Path) -> None:
        env = {
            "MONGODB_URI": uri,
            "FAVGATE_WEBHOOK_ALLOW_PRIVATE": "true",
            "FAVGATE_WEBHOOK_BACKOFF_SECONDS": "0.2",
            "FAVGATE_RATE_LIMIT": "100000",
        }
        super().__init__(env, log, mode="ab")

    async def favorite(self, client: httpx.AsyncClient, token: str, chat: str) -> None:
        response = await client.post(
            f"{self.url}/api/chat/favorite/main",
            json={"number": chat, "favorite": True},
            headers={"token": token},
        )
        assert response.status_code == 200, response.text

    async def delivered(self, client: httpx.AsyncClient) -> float:
        """This process's count of deliveries made, from its /metrics."""
        text = (await client.get(f"{self.url}/metrics")).text
        prefix = 'favgate_webhook_deliveries_total{outcome="delivered"} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0


@pytest.fixture
def database_uri(mongodb_uri: str) -> str:
    return with_database(mongodb_uri, f"favgate_webhooks_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def storage(database_uri: str) -> AsyncIterator[Storage]:
    storage = open_storage(Settings().with_uri(database_uri))
    try:
        await storage.ensure_indexes()
        yield storage
    finally:
        await storage.drop_database()
        await storage.close()


@pytest.fixture
async def token(storage: Storage) -> str:
    """The token of instance ``main``, of account acme."""
    token = generate_token()
    await storage.directory.create_account("acme", hash_token(generate_token()))
    await storage.directory.create_instance(
        "main", "acme", InstanceStatus.CONNECTED, hash_token(token)
    )
    return token


@pytest.fixture
def gateways(database_uri: str, tmp_path: Path) -> Iterator[list[Gateway]]:
    """Starts gateways on demand (``append``); whatever still runs is stopped at the end."""
    started: list[Gateway] = []
    with ExitStack() as stack:
        stack.callback(lambda: [gateway.stop() for gateway in started])
        yield started


def start(gateways: list[Gateway], database_uri: str, tmp_path: Path) -> Gateway:
    gateway = Gateway(database_uri, tmp_path / f"serve-{len(gateways)}.log")
    gateways.append(gateway)
    return gateway


def chats_of(receiver: Receiver, secret: str) -> list[str]:
    """The chat of each distinct event received, its signature verified."""
    first_of_each = {r.id: r for r in reversed(receiver.snapshot())}
    return sorted(r.verified(secret)["data"]["favorite"]["chatJid"] for r in first_of_each.values())


async def test_pending_deliveries_are_made_after_a_kill_9(
    storage: Storage, token: str, gateways: list[Gateway], database_uri: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet: every attempt is refused
    secret = generate_secret()
    await storage.webhooks.add("main", f"http://127.0.0.1:{port}/hook", secret, _now())
    async with httpx.AsyncClient(timeout=30) as client:
        first = start(gateways, database_uri, tmp_path)
        await first.wait_until_ready(client)
        for chat in CHATS[:5]:
            await first.favorite(client, token, chat)
        await wait_until(lambda: attempted(database_uri) == 5)
        first.kill()
        # Two changes while no gateway runs (another writer): the stream still has them.
        for chat in CHATS[5:7]:
            target = FavoriteTarget(FavoriteType.CHAT, chat)
            await storage.favorites.set("main", target, True, _now())

        with Receiver(port=port) as receiver:
            second = start(gateways, database_uri, tmp_path)
            await second.wait_until_ready(client)
            await receiver.wait_for(lambda r: len({x.id for x in r}) >= 7, RESTART_TIMEOUT)
            await asyncio.sleep(QUIET)
            assert chats_of(receiver, secret) == sorted(CHATS[:7])
            assert len(receiver.snapshot()) == 7, "each delivered once, once received"
        assert second.stop() == 128 + signal.SIGTERM, second.output()


async def test_two_gateways_deliver_each_event_once(
    storage: Storage, token: str, gateways: list[Gateway], database_uri: str, tmp_path: Path
) -> None:
    with Receiver() as receiver:
        secret = generate_secret()
        await storage.webhooks.add("main", receiver.url, secret, _now())
        pair = [start(gateways, database_uri, tmp_path) for _ in range(2)]
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(gateway.wait_until_ready(client) for gateway in pair))
            await asyncio.gather(
                *(pair[i % 2].favorite(client, token, chat) for i, chat in enumerate(CHATS))
            )
            await receiver.wait_for(lambda r: len({x.id for x in r}) >= len(CHATS))
            await asyncio.sleep(QUIET)
            received = receiver.snapshot()
            delivered = [await gateway.delivered(client) for gateway in pair]

    assert chats_of(receiver, secret) == sorted(CHATS)
    assert len(received) == len(CHATS), "no event was sent twice"
    assert sum(delivered) == len(CHATS), delivered
    for gateway in pair:
        assert gateway.stop() == 128 + signal.SIGTERM, gateway.output()


def attempted(uri: str) -> int:
    """How many deliveries are pending, each attempted (and refused) already."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    with client:
        deliveries = client.get_default_database().webhook_deliveries
        return deliveries.count_documents({"status": "pending", "attempts": {"$gte": 1}})


async def wait_until(condition: Callable[[], bool], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"not so within {limit:g} s"
        await asyncio.sleep(0.05)


def _now() -> datetime:
    return datetime.now(UTC)


async def test_a_relay_killed_while_endpoints_churn_loses_nothing(
    storage: Storage, token: str, gateways: list[Gateway], database_uri: str, tmp_path: Path
) -> None:
    """The relaying gateway is killed (``kill -9``) while endpoints of other instances are
    added and removed without pause (each one reopens its stream), among favorites written
    through the other gateway: the other takes over and every favorite is delivered, to
    the endpoint there all along and to one added while nobody relayed."""
    secret = generate_secret()
    with Receiver() as receiver:
        await storage.webhooks.add("main", receiver.url, secret, _now())
        async with httpx.AsyncClient(timeout=30) as client:
            holder = start(gateways, database_uri, tmp_path)
            await holder.wait_until_ready(client)  # the relay's lease is its own
            writer = start(gateways, database_uri, tmp_path)
            await writer.wait_until_ready(client)
            churning = asyncio.create_task(churn(storage))
            try:
                for chat in CHATS[:20]:
                    await writer.favorite(client, token, chat)
                holder.kill()
                late = await storage.webhooks.add("main", receiver.url + "/late", secret, _now())
                for chat in CHATS[20:]:
                    await writer.favorite(client, token, chat)
            finally:
                churning.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await churning
            await receiver.wait_for(lambda r: len({x.id for x in r}) >= len(CHATS), RESTART_TIMEOUT)
            await receiver.wait_for(
                lambda r: len({x.id for x in r if x.path.endswith("/late")}) >= 20, RESTART_TIMEOUT
            )
            await asyncio.sleep(QUIET)
    sent: dict[str, set[str]] = {}
    for r in receiver.snapshot():
        sent.setdefault(r.path, set()).add(r.verified(secret)["data"]["favorite"]["chatJid"])
    assert sent["/hooks/favgate"] == set(CHATS)
    assert sent["/hooks/favgate/late"] >= set(CHATS[20:]), late.id
    assert writer.stop() == 128 + signal.SIGTERM, writer.output()


async def churn(storage: Storage) -> None:
    """Endpoints of other instances added and removed, one after another, until cancelled."""
    for step in itertools.count():
        added = await storage.webhooks.add(f"other{step % 7}", "http://192.0.2.1/", "s", _now())
        if step % 2:
            await storage.webhooks.remove(added.id)
