"""Fixtures: database server (session) → settings with a unique database → storage →
app (lifespan entered) → HTTP client, plus tenants seeded through the real storage.

Every test runs against a real server over the wire: ``MONGODB_URI`` when set, else a
SecantusDB process started once for the session.

Drivers: tests that take ``settings`` run with motor (``driver``). Where the driver
matters, mark them ``@pytest.mark.both_drivers`` (a test, or a module's ``pytestmark``) and
they run with motor and with PyMongo's async client: the storage layer and its caches,
change streams, outages, the limiter against the store, and round trips counted over the
wire. Nothing else reaches the driver except through the storage layer.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

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


class LifespanApp:
    """Runs an app's lifespan and hands its state to every request, as a server would.

    httpx's ASGITransport runs no lifespan, so the tests enter it here.
    """

    def __init__(self, app: Starlette, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = dict(self.state)
        await self.app(scope, receive, send)


@pytest.fixture
async def app(settings: Settings, database: str) -> AsyncIterator[LifespanApp]:
    application = create_app(settings)
    async with application.router.lifespan_context(application) as state:
        yield LifespanApp(application, dict(state or {}))


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a fresh app built from ``settings``, inside the app's lifespan."""
    application = create_app(settings)
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=LifespanApp(application, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as c:
            yield c


@pytest.fixture
async def client(app: LifespanApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as client:
        yield client


@dataclass(frozen=True)
class Tenants:
    """Two accounts: acme (instances main, offline) and globex (instance rival)."""

    acme_token: str
    main_token: str
    offline_token: str
    globex_token: str
    rival_token: str


CHAT_JID = "5511999999999@s.whatsapp.net"
GROUP_JID = "120363012345678901@g.us"
MESSAGE_ID = "3EB08FCF27E532F1B0F5"


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


class CommandLog(monitoring.CommandListener):
    """The command documents sent to the test's database while ``active``.

    PyMongo listeners are process-global and cannot be unregistered: one log is
    registered for the session, before any test creates a client (a listener reaches only
    clients created after it), and each test points it at its own database.
    """

    def __init__(self) -> None:
        self.database: str | None = None
        self.active = False
        self.documents: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.active and event.database_name == self.database:
            self.documents.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def clear(self) -> None:
        self.documents = []

    @property
    def commands(self) -> list[tuple[str, str]]:
        """(command, collection) of each document; the command is its first key."""
        return [(name, str(doc[name])) for doc in self.documents for name in [next(iter(doc))]]

    @property
    def with_updates(self) -> list[tuple[str, str, int]]:
        """(command, collection, number of update statements) of each document."""
        return [
            (name, collection, len(doc.get("updates", ())))
            for (name, collection), doc in zip(self.commands, self.documents, strict=True)
        ]

    def documents_outside(self, collection: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc[next(iter(doc))] != collection]


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


@pytest.fixture
async def own_server() -> AsyncIterator[ServerProcess]:
    """A database server of the test's own, in memory, which it may kill and restart."""
    process = ServerProcess(":memory:")
    await asyncio.to_thread(process.start)
    try:
        yield process
    finally:
        process.kill()  # in memory: there is nothing to shut down cleanly


def collect_leaked_sockets() -> None:
    """Collect the socket PyMongo's async client (4.20) leaks when ``close()`` cancels its
    monitor in the middle of a connect to a dead server: it is garbage at once, so its
    ResourceWarning is silenced here, where it is expected, instead of failing whichever
    later test the garbage collector happens to run in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def seed_instance(
    settings: Settings,
    *,
    account_token: str | None = None,
    instance_token: str | None = None,
    instance: str = "main",
) -> None:
    """Account "acme" with its connected ``instance``, in ``settings``' database, through a
    client of its own (so that only requests exercise the gateway's). A token not given is
    one nobody knows."""
    storage = open_storage(settings)
    try:
        await storage.ensure_indexes()
        await storage.directory.create_account(
            "acme", hash_token(account_token or generate_token())
        )
        await storage.directory.create_instance(
            instance,
            "acme",
            InstanceStatus.CONNECTED,
            hash_token(instance_token or generate_token()),
        )
    finally:
        await storage.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_database(uri: str, database: str) -> str:
    """``uri`` naming ``database`` in its path, its options kept."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=f"/{database}"))
