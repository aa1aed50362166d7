"""Fixtures: database server (session) → settings with a unique database → app (lifespan
entered) → storage → HTTP client, plus tenants seeded through the real storage. Only
fixtures and hooks live here; what the tests share besides is in helpers.py.

Every test runs against a real server over the wire: ``MONGODB_URI`` when set, else a
SecantusDB process started once for the session.

Drivers: tests that take ``settings`` run with motor (``driver``). Where the driver
matters, mark them ``@pytest.mark.both_drivers`` (a test, or a module's ``pytestmark``) and
they run with motor and with PyMongo's async client: the storage layer and its caches,
change streams, outages, the limiter against the store, and round trips counted over the
wire. Nothing else reaches the driver except through the storage layer.

Tests of a second or more each (a real process, a browser, real time) are marked ``slow``:
``make test-fast`` skips them, ``make test`` runs everything.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, CommandLog, LifespanApp, Tenants
from pymongo import AsyncMongoClient, monitoring

from favgate.app import create_app
from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.embedded import ServerProcess
from favgate.storage import InstanceStatus, Storage, open_storage

DRIVERS = ["motor", "pymongo"]
DEFAULT_DRIVER = "motor"


@pytest.fixture(scope="session")
def mongodb_uri() -> Iterator[str]:
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield uri
        return
    with ServerProcess(":memory:") as server:
        yield server.uri


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``both_drivers``: ``driver`` is parametrized over DRIVERS, which overrides the fixture."""
    if "driver" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_drivers"):
        metafunc.parametrize("driver", DRIVERS)


@pytest.fixture
def driver() -> str:
    return DEFAULT_DRIVER


@pytest.fixture
def settings(mongodb_uri: str, driver: str) -> Settings:
    return (
        Settings(
            mongo_driver=driver,  # type: ignore[arg-type]
            graphiql=True,
            # Never trips: tests of the limit itself build settings with small limits.
            rate_limit=1_000_000,
            # Every request checks with the store, so that round trips per request are
            # exact; the tests of leases turn them on.
            rate_limit_leases=False,
            # No background traffic in the test's database (command counts stay exact);
            # the webhook tests turn the worker on.
            webhook_worker=False,
        )
        .with_uri(mongodb_uri)
        .replace(database=f"favgate_test_{uuid.uuid4().hex[:12]}")
    )


@pytest.fixture(scope="session")
async def dropper(mongodb_uri: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """One client for the session that drops the tests' databases."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_uri)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def database(
    settings: Settings, dropper: AsyncMongoClient[dict[str, Any]]
) -> AsyncIterator[str]:
    """The test's database, dropped after the app and storage that used it have closed."""
    try:
        yield settings.database
    finally:
        await dropper.drop_database(settings.database)


@pytest.fixture
def app_if_any(request: pytest.FixtureRequest, database: str) -> LifespanApp | None:
    """The test's app when it has one, started now, before the storage fixture or anything
    else writes: its lifespan creates the indexes. (A plain fixture: an async one cannot
    start another async fixture, the event loop is already running.)"""
    if "app" not in request.fixturenames:
        return None
    app: LifespanApp = request.getfixturevalue("app")
    return app


@pytest.fixture
async def storage(
    settings: Settings, database: str, app_if_any: LifespanApp | None
) -> AsyncIterator[Storage]:
    """A storage of the test's own (its own client and caches) on the test's database, with
    the indexes: created by the app's lifespan when the test has an app, else here. Once
    per test: they cost a round trip per collection."""
    storage = open_storage(settings)
    try:
        if app_if_any is None:
            await storage.ensure_indexes()
        yield storage
    finally:
        await storage.close()


@pytest.fixture
async def app(settings: Settings, database: str) -> AsyncIterator[LifespanApp]:
    application = create_app(settings)
    async with application.router.lifespan_context(application) as state:
        yield LifespanApp(application, dict(state or {}))


@pytest.fixture
async def client(app: LifespanApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as client:
        yield client


@pytest.fixture
async def tenants(storage: Storage) -> Tenants:
    tokens = Tenants(*(generate_token() for _ in range(5)))
    directory = storage.directory
    await directory.create_account("acme", hash_token(tokens.acme_token))
    await directory.create_account("globex", hash_token(tokens.globex_token))
    connected, disconnected = InstanceStatus.CONNECTED, InstanceStatus.DISCONNECTED
    await directory.create_instance("main", "acme", connected, hash_token(tokens.main_token))
    await directory.create_instance(
        "offline", "acme", disconnected, hash_token(tokens.offline_token)
    )
    await directory.create_instance("rival", "globex", connected, hash_token(tokens.rival_token))
    await storage.messages.upsert_many(
        "main",
        [
            {"id": MESSAGE_ID, "chat_jid": CHAT_JID, "from_me": False, "text": "hello"},
            {"id": "GROUPMSG1", "chat_jid": GROUP_JID, "from_me": True, "text": "hi all"},
        ],
    )
    await storage.messages.upsert_many(
        "rival", [{"id": "RIVALMSG1", "chat_jid": CHAT_JID, "from_me": False, "text": "x"}]
    )
    return tokens


@pytest.fixture(scope="session")
def command_log() -> CommandLog:
    log = CommandLog()
    monitoring.register(log)
    return log


@pytest.fixture
def commands(command_log: CommandLog, settings: Settings) -> Iterator[CommandLog]:
    """The session's command log, recording this test's database from now on."""
    command_log.database = settings.database
    command_log.active = True
    command_log.clear()
    try:
        yield command_log
    finally:
        command_log.active = False
        command_log.database = None
        command_log.on_reply = None


@pytest.fixture
async def own_server() -> AsyncIterator[ServerProcess]:
    """A database server of the test's own, in memory, which it may kill and restart."""
    process = ServerProcess(":memory:")
    await asyncio.to_thread(process.start)
    try:
        yield process
    finally:
        process.kill()  # in memory: there is nothing to shut down cleanly
