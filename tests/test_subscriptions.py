"""Live favorite changes: ``favoriteChanged`` over graphql-transport-ws, fed by change streams.

Every test talks to a real uvicorn server on a free port (httpx's ASGI transport does no
WebSockets) with the ``websockets`` client, and every change comes from the database's
change streams: writes made through REST, through GraphQL, through a second gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, Tenants, seed_instance
from pymongo import MongoClient, monitoring
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError

from favgate.app import create_app
from favgate.auth import generate_token
from favgate.config import ConfigError, Settings
from favgate.embedded import ServerProcess, find_server_executable
from favgate.errors import ChangeStreamsUnavailable, ServiceUnavailable
from favgate.metrics import REGISTRY
from favgate.resolvers.favorites import now
from favgate.storage import FavoriteTarget, FavoriteType, Storage
from favgate.storage.changes import MAX_PENDING
from favgate.wsprotocol import websocket_options

pytestmark = [pytest.mark.both_drivers, pytest.mark.slow]

PROTOCOL = "graphql-transport-ws"
TIMEOUT = 10.0  # seconds for anything that should happen; a failure, never a wait
QUIET = 0.5  # seconds of silence that show an event did not come
CHATS = [f"55119999900{i:02d}@s.whatsapp.net" for i in range(4)]

FAVORITE_CHANGED = """
subscription Changes($instance: String!, $type: FavoriteType) {
  favoriteChanged(instance: $instance, type: $type) {
    id type chatJid messageId favorite favoritedAt updatedAt message { id text }
  }
}
"""

SET_FAVORITE = """
mutation Set($instance: String!, $number: String, $messageId: String, $favorite: Boolean!) {
  setFavorite(instance: $instance, number: $number, messageId: $messageId, favorite: $favorite) {
    success
  }
}
"""


# --- a real server, and a graphql-transport-ws client --------------------------------


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[str]:
    """A gateway for ``settings`` on a free port of 127.0.0.1; yields its base URL.

    Its WebSocket protocol is favgate serve's (coalesced writes, compression as set), its
    size cap uvicorn's own: the app's cap has tests of its own."""
    options = websocket_options(settings)
    del options["ws_max_size"]
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        **options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def gateway(settings: Settings, storage: Storage) -> AsyncIterator[str]:
    async with serve(settings) as address:
        yield address


def open_subscriptions() -> float:
    value = REGISTRY.get_sample_value("favgate_graphql_subscriptions_open")
    assert value is not None
    return value


async def until(condition: Any, what: str) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


class Client:
    """One graphql-transport-ws connection."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.ids = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.websocket.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            message: dict[str, Any] = json.loads(await self.websocket.recv())
        return message

    async def silent(self) -> bool:
        """Whether nothing arrives for ``QUIET`` seconds."""
        try:
            async with asyncio.timeout(QUIET):
                await self.websocket.recv()
        except TimeoutError:
            return True
        return False

    async def init(self, payload: dict[str, Any] | None = None) -> None:
        await self.send({"type": "connection_init", "payload": payload or {}})
        assert await self.receive() == {"type": "connection_ack"}

    async def start(self, instance: str, query: str = FAVORITE_CHANGED, **variables: Any) -> str:
        """Send a subscribe message; returns its operation id."""
        self.ids += 1
        operation = str(self.ids)
        payload = {"query": query, "variables": {"instance": instance, **variables}}
        await self.send({"id": operation, "type": "subscribe", "payload": payload})
        return operation

    async def subscribe(self, instance: str = "main", **variables: Any) -> str:
        """Subscribe; returns once the server's change stream is open."""
        before = open_subscriptions()
        operation = await self.start(instance, **variables)
        # The gauge moves once the stream is open: changes made from then on are seen.
        await until(lambda: open_subscriptions() > before, "the subscription is open")
        return operation

    async def next(self, operation: str) -> dict[str, Any]:
        message = await self.receive()
        assert message["id"] == operation, message
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]["favoriteChanged"]
        return data

    async def error(self, operation: str) -> tuple[str, str | None]:
        message = await self.receive()
        assert (message["id"], message["type"]) == (operation, "error"), message
        [error] = message["payload"]
        return error["message"], error.get("extensions", {}).get("code")


@contextlib.asynccontextmanager
async def client(
    address: str, payload: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    before = open_subscriptions()
    async with connect(
        f"ws://{address}/graphql", subprotocols=[PROTOCOL], additional_headers=headers
    ) as websocket:
        connection = Client(websocket)  # type: ignore[arg-type]
        await connection.init(payload)
        yield connection
    # Closing the connection ends its subscriptions; the next test starts from a known count.
    await until(lambda: open_subscriptions() <= before, "the connection's subscriptions end")


async def rest_favorite(address: str, token: str, instance: str = "main", **body: Any) -> None:
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        response = await http.post(
            f"/api/chat/favorite/{instance}", json=body, headers={"token": token}
        )
    assert response.status_code == 200, response.text


async def graphql_favorite(address: str, token: str, **variables: Any) -> None:
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        response = await http.post(
            "/graphql",
            json={"query": SET_FAVORITE, "variables": {"instance": "main", **variables}},
            headers={"token": token},
        )
    assert response.json() == {"data": {"setFavorite": {"success": True}}}, response.text


# --- authentication and tenants ------------------------------------------------------


async def test_a_rest_favorite_reaches_the_subscriber(gateway: str, tenants: Tenants) -> None:
    async with client(gateway, {"token": tenants.main_token}) as ws:
        operation = await ws.subscribe()
        await rest_favorite(gateway, tenants.main_token, messageId=MESSAGE_ID, favorite=True)
        change = await ws.next(operation)
    assert change.pop("id")
    assert change.pop("favoritedAt") == change.pop("updatedAt")
    assert change == {
        "type": "MESSAGE",
        "chatJid": CHAT_JID,
        "messageId": MESSAGE_ID,
        "favorite": True,
        "message": {"id": MESSAGE_ID, "text": "hello"},
    }


async def test_the_token_comes_in_the_payload_or_the_headers(
    gateway: str, tenants: Tenants
) -> None:
    token, bearer = {"token": tenants.main_token}, {"Authorization": f"Bearer {tenants.main_token}"}
    placements: list[tuple[dict[str, Any] | None, dict[str, str] | None]] = [
        (token, None),
        (bearer, None),
        (None, token),
        (None, bearer),
        (token, {"token": "not-a-token"}),  # the payload wins over the headers
    ]
    for chat, (payload, headers) in zip([*CHATS, GROUP_JID], placements, strict=True):
        async with client(gateway, payload, headers) as ws:
            operation = await ws.subscribe()
            await rest_favorite(gateway, tenants.main_token, number=chat, favorite=True)
            assert (await ws.next(operation))["chatJid"] == chat


# A missing or bad token closes the connection 4403: tests/test_websocket.py.


async def test_an_instance_the_token_cannot_reach_is_not_found(
    gateway: str, tenants: Tenants
) -> None:
    cases = [
        (tenants.acme_token, "rival"),  # another account's
        (tenants.main_token, "offline"),  # another instance of the same account
        (tenants.main_token, "nowhere"),
        (tenants.rival_token, "main"),
    ]
    for token, instance in cases:
        async with client(gateway, {"token": token}) as ws:
            operation = await ws.start(instance)
            assert await ws.error(operation) == ("Instance not found", "NOT_FOUND")


async def test_changes_of_another_instance_never_arrive(gateway: str, tenants: Tenants) -> None:
    async with client(gateway, {"token": tenants.acme_token}) as ws:
        operation = await ws.subscribe("main")
        # Another tenant's instance, with the very same chat.
        await rest_favorite(gateway, tenants.rival_token, "rival", number=CHAT_JID, favorite=True)
        await rest_favorite(
            gateway, tenants.rival_token, "rival", messageId="RIVALMSG1", favorite=True
        )
        await rest_favorite(gateway, tenants.main_token, number=GROUP_JID, favorite=True)
        change = await ws.next(operation)
        assert (change["chatJid"], change["type"]) == (GROUP_JID, "CHAT")
        assert await ws.silent()


# --- what arrives -------------------------------------------------------------------


async def test_the_type_filter_keeps_one_type(gateway: str, tenants: Tenants) -> None:
    async with client(gateway, {"token": tenants.main_token}) as ws:
        messages = await ws.subscribe(type="MESSAGE")
        chats = await ws.subscribe(type="CHAT")
        await rest_favorite(gateway, tenants.main_token, number=CHAT_JID, favorite=True)
        await rest_favorite(gateway, tenants.main_token, messageId=MESSAGE_ID, favorite=True)
        received = [await ws.receive(), await ws.receive()]
        assert await ws.silent()
    by_operation = {m["id"]: m["payload"]["data"]["favoriteChanged"] for m in received}
    assert by_operation[messages]["type"] == "MESSAGE"
    assert by_operation[messages]["messageId"] == MESSAGE_ID
    assert by_operation[chats]["type"] == "CHAT"
    assert by_operation[chats]["message"] is None


async def test_unfavorite_arrives_and_repeats_do_not(gateway: str, tenants: Tenants) -> None:
    async with client(gateway, {"token": tenants.main_token}) as ws:
        operation = await ws.subscribe()
        for _ in range(2):  # the second of each changes nothing, so it sends nothing
            await graphql_favorite(gateway, tenants.main_token, number=CHAT_JID, favorite=True)
        first = await ws.next(operation)
        for _ in range(2):
            await graphql_favorite(gateway, tenants.main_token, number=CHAT_JID, favorite=False)
        second = await ws.next(operation)
        assert await ws.silent()
    assert (first["favorite"], second["favorite"]) == (True, False)
    assert first["id"] == second["id"]
    assert second["favoritedAt"] == first["favoritedAt"]
    assert second["updatedAt"] > first["updatedAt"]


async def test_a_change_made_through_another_gateway_arrives(
    gateway: str, settings: Settings, tenants: Tenants
) -> None:
    # Another gateway on the same database, with the other driver: a replica.
    other_driver = "pymongo" if settings.mongo_driver == "motor" else "motor"
    async with (
        serve(settings.replace(mongo_driver=other_driver)) as replica,
        client(gateway, {"token": tenants.main_token}) as ws,
    ):
        operation = await ws.subscribe()
        await rest_favorite(replica, tenants.main_token, number=CHAT_JID, favorite=True)
        await graphql_favorite(replica, tenants.main_token, messageId=MESSAGE_ID, favorite=True)
        received = [await ws.next(operation), await ws.next(operation)]
    assert [(c["type"], c["favorite"]) for c in received] == [("CHAT", True), ("MESSAGE", True)]


async def test_the_upstream_engine_writes_are_seen_too(
    gateway: str, tenants: Tenants, storage: Storage
) -> None:
    # Any writer of the collection, not only a gateway: here the storage directly.
    async with client(gateway, {"token": tenants.main_token}) as ws:
        operation = await ws.subscribe()
        target = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=GROUP_JID)
        await storage.favorites.set("main", target, True, now())
        assert (await ws.next(operation))["chatJid"] == GROUP_JID


# --- the connection ------------------------------------------------------------------


async def test_subscriptions_per_connection_are_capped(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    async with (
        serve(settings.replace(max_subscriptions_per_connection=2)) as address,
        client(address, {"token": tenants.main_token}) as ws,
    ):
        before = open_subscriptions()
        first, second = await ws.subscribe(), await ws.subscribe()
        third = await ws.start("main")
        assert await ws.error(third) == ("Subscription limit reached", "TOO_MANY_SUBSCRIPTIONS")
        # Completing one frees its place.
        await ws.send({"id": first, "type": "complete"})
        await until(lambda: open_subscriptions() == before + 1, "the first one is closed")
        fourth = await ws.subscribe()
        await rest_favorite(address, tenants.main_token, number=CHAT_JID, favorite=True)
        received = {(await ws.receive())["id"], (await ws.receive())["id"]}
        assert received == {second, fourth}


def test_the_cap_is_a_setting() -> None:
    name = "FAVGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION"
    assert Settings.from_env({}).max_subscriptions_per_connection == 10
    assert Settings.from_env({name: "3"}).max_subscriptions_per_connection == 3
    for raw in ("0", "-1", "many"):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: raw})


async def test_open_subscriptions_are_counted(gateway: str, tenants: Tenants) -> None:
    before = open_subscriptions()
    async with client(gateway, {"token": tenants.main_token}) as ws:
        operation = await ws.subscribe()
        assert open_subscriptions() == before + 1
        await ws.send({"id": operation, "type": "complete"})
        await until(lambda: open_subscriptions() == before, "the gauge is back")
        await ws.subscribe()
        assert open_subscriptions() == before + 1
    # Closing the connection ends its subscriptions.
    await until(lambda: open_subscriptions() == before, "the gauge is back after closing")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('query { favorites(instance: "main") { totalCount } }', "queries are not allowed"),
        (
            f'mutation {{ setFavorite(instance: "main", number: "{CHAT_JID}", favorite: true) '
            "{ success } }",
            "mutations are not allowed",
        ),
    ],
    ids=["query", "mutation"],
)
async def test_the_websocket_carries_subscriptions_only(
    gateway: str, tenants: Tenants, storage: Storage, document: str, message: str
) -> None:
    # Queries and mutations go over HTTP, where requests are rate limited.
    async with client(gateway, {"token": tenants.main_token}) as ws:
        await ws.send({"id": "1", "type": "subscribe", "payload": {"query": document}})
        assert await ws.error("1") == (message, None)
    target = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=CHAT_JID)
    assert await storage.favorites.get("main", target) is None


async def test_the_legacy_protocol_is_refused(gateway: str) -> None:
    legacy: Any = "graphql-ws"
    async with connect(f"ws://{gateway}/graphql", subprotocols=[legacy]) as websocket:
        assert websocket.subprotocol is None
        with pytest.raises(ConnectionClosedError) as closed:
            await websocket.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        4406,
        "Subprotocol not acceptable",
    )


# --- resuming, and databases without change streams ----------------------------------

# The server selection timeout of the tests with a server of their own: each attempt to
# resume during an outage waits this long.
OUTAGE_WAIT_MS = 500


class ChangeStreamCursors(monitoring.CommandListener):
    """The cursor ids of the change streams opened on one database.

    pymongo listeners are process-global and cannot be unregistered: this one is
    registered once per session and records nothing until a test names its database.
    """

    def __init__(self) -> None:
        self.database: str | None = None
        self.ids: list[int] = []
        self._opening: set[int] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pipeline = event.command.get("pipeline") or [{}]
        if event.database_name == self.database and "$changeStream" in pipeline[0]:
            self._opening.add(event.request_id)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self._opening:
            self._opening.discard(event.request_id)
            self.ids.append(int(event.reply["cursor"]["id"]))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._opening.discard(event.request_id)


@pytest.fixture(scope="session")
def change_stream_listener() -> ChangeStreamCursors:
    # Session scope: registered before any client of a test exists (listeners only reach
    # clients created after them).
    listener = ChangeStreamCursors()
    monitoring.register(listener)
    return listener


@pytest.fixture
def change_streams(
    change_stream_listener: ChangeStreamCursors, settings: Settings
) -> Iterator[ChangeStreamCursors]:
    change_stream_listener.database = settings.database
    change_stream_listener.ids = []
    try:
        yield change_stream_listener
    finally:
        change_stream_listener.database = None


async def test_a_killed_cursor_loses_no_change(
    change_streams: ChangeStreamCursors,
    gateway: str,
    tenants: Tenants,
    settings: Settings,
    mongodb_uri: str,
) -> None:
    async with client(gateway, {"token": tenants.main_token}) as ws:
        operation = await ws.subscribe()
        [cursor] = change_streams.ids
        with MongoClient(mongodb_uri) as admin:
            reply = admin[settings.database].command("killCursors", "favorites", cursors=[cursor])
        assert reply["cursorsKilled"] == [cursor]
        # Written while the stream is being resumed: none may be lost, none repeated.
        for chat in CHATS:
            await rest_favorite(gateway, tenants.main_token, number=chat, favorite=True)
        received = [(await ws.next(operation))["chatJid"] for _ in CHATS]
        assert received == CHATS
        assert await ws.silent()
    assert len(change_streams.ids) == 2  # the stream was opened again, on a new cursor


async def test_a_feed_reopened_after_its_last_change_loses_none(
    storage: Storage, tenants: Tenants
) -> None:
    feed = await storage.changes.watch()
    changes = feed.changes()
    await storage.favorites.set("main", chat_target(CHATS[0]), True, now())
    first = await anext(changes)
    await changes.aclose()  # closes the stream
    # Written while no stream is open at all.
    for chat in CHATS[1:]:
        await storage.favorites.set("main", chat_target(chat), True, now())
    await storage.favorites.set("rival", chat_target(CHAT_JID), True, now())
    await storage.favorites.set("main", chat_target(CHATS[0]), False, now())

    feed = await storage.changes.watch(first.resume_token)
    changes = feed.changes()
    received = [(await anext(changes)).favorite for _ in range(len(CHATS) + 1)]
    await changes.aclose()
    assert first.favorite.target.chat_jid == CHATS[0]
    assert [(f.instance, f.target.chat_jid, f.favorite) for f in received] == [
        *(("main", chat, True) for chat in CHATS[1:]),
        ("rival", CHAT_JID, True),
        ("main", CHATS[0], False),
    ]


async def test_one_stream_serves_every_subscription(
    change_streams: ChangeStreamCursors, gateway: str, tenants: Tenants
) -> None:
    async with client(gateway, {"token": tenants.acme_token}) as first:
        main = {await first.subscribe("main"), await first.subscribe("main", type="CHAT")}
        await first.subscribe("offline")
        async with client(gateway, {"token": tenants.rival_token}) as second:
            rival = await second.subscribe("rival")
            await rest_favorite(gateway, tenants.main_token, number=CHATS[0], favorite=True)
            await rest_favorite(
                gateway, tenants.rival_token, "rival", number=CHATS[1], favorite=True
            )
            assert {(await first.receive())["id"], (await first.receive())["id"]} == main
            assert (await second.next(rival))["chatJid"] == CHATS[1]
            assert await first.silent()
    assert len(change_streams.ids) == 1
    # The last subscription gone, the stream is closed; the next one opens another.
    async with client(gateway, {"token": tenants.main_token}) as ws:
        await ws.subscribe()
    assert len(change_streams.ids) == 2


async def test_a_subscriber_that_stops_reading_is_dropped(
    storage: Storage, tenants: Tenants
) -> None:
    idle = await storage.changes.subscribe("main")
    busy = await storage.changes.subscribe("rival")
    chats = [f"5511{i:09d}@s.whatsapp.net" for i in range(MAX_PENDING + 1)]
    for start in range(0, len(chats), 100):
        states = [(chat_target(chat), True) for chat in chats[start : start + 100]]
        await storage.favorites.set_many("main", states, now())
    await storage.favorites.set("rival", chat_target(CHAT_JID), True, now())
    # Another subscriber still receives its changes: the stream goes on.
    async with asyncio.timeout(TIMEOUT):
        assert (await anext(busy)).instance == "rival"
    received = 0
    with pytest.raises(ServiceUnavailable, match="Too many changes left unread"):
        async with asyncio.timeout(TIMEOUT):
            async for _ in idle:
                received += 1
    assert received == MAX_PENDING
    await idle.aclose()
    await busy.aclose()


def chat_target(chat: str) -> FavoriteTarget:
    return FavoriteTarget(type=FavoriteType.CHAT, chat_jid=chat)


@pytest.fixture
async def own_server(tmp_path: Any) -> AsyncIterator[ServerProcess]:
    """A database server of the test's own, to stop and start."""
    server = ServerProcess(tmp_path / "db")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        server.kill()  # its data is thrown away: no need to wait for a clean stop


def own_settings(uri: str, driver: str) -> Settings:
    settings = Settings(
        mongo_driver=driver,  # type: ignore[arg-type]
        database_timeout_ms=OUTAGE_WAIT_MS,
        # Only the subscriptions' stream faces the outage (the webhook relay has its own).
        webhook_worker=False,
    )
    return settings.with_uri(uri)


async def test_a_subscription_outlives_a_database_restart(
    own_server: ServerProcess, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = own_settings(own_server.uri, driver)
    token = generate_token()
    await seed_instance(settings, account_token=token)
    async with serve(settings) as address, client(address, {"token": token}) as ws:
        operation = await ws.subscribe()
        await rest_favorite(address, token, number=CHATS[0], favorite=True)
        assert (await ws.next(operation))["chatJid"] == CHATS[0]
        own_server.kill()
        # Down longer than the driver's own resume attempt waits, so that the feed has to
        # reopen the stream itself; well within the attempts it makes before giving up.
        await asyncio.sleep(OUTAGE_WAIT_MS / 1000 + 0.2)
        await asyncio.to_thread(own_server.start)
        for chat in CHATS[1:]:
            await rest_favorite(address, token, number=chat, favorite=True)
        assert [(await ws.next(operation))["chatJid"] for _ in CHATS[1:]] == CHATS[1:]
    resumes = [r for r in caplog.records if r.name == "favgate.storage.changes"]
    assert resumes and all("resuming" in r.getMessage() for r in resumes)


async def test_a_database_that_stays_away_ends_the_subscription(
    own_server: ServerProcess, driver: str
) -> None:
    settings = own_settings(own_server.uri, driver)
    token = generate_token()
    await seed_instance(settings, account_token=token)
    async with serve(settings) as address, client(address, {"token": token}) as ws:
        before = open_subscriptions()
        operation = await ws.subscribe()
        own_server.kill()
        message = await ws.receive()
        assert message["type"] == "next"
        assert message["payload"]["data"] is None
        [error] = message["payload"]["errors"]
        assert (error["message"], error["extensions"]) == (
            ServiceUnavailable.message,
            {"code": "SERVICE_UNAVAILABLE"},
        )
        assert await ws.receive() == {"id": operation, "type": "complete"}
        assert open_subscriptions() == before


@pytest.fixture(scope="module")
def standalone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database server that is no replica set, so has no change streams; its URI."""
    probe = ServerProcess(":memory:")  # only for its free port
    command = [find_server_executable(), "--host", "127.0.0.1", "--port", str(probe.port)]
    command += ["--storage-path", str(tmp_path_factory.mktemp("standalone")), "--standalone"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with MongoClient(probe.uri, serverSelectionTimeoutMS=int(TIMEOUT * 1000)) as admin:
            admin.admin.command("ping")
            assert "setName" not in admin.admin.command("hello")
        yield probe.uri
    finally:
        process.kill()  # its data is thrown away: no need to wait for a clean stop
        process.wait(TIMEOUT)


async def test_without_change_streams_the_subscription_says_so(
    standalone_server: str, driver: str
) -> None:
    settings = own_settings(standalone_server, driver).replace(
        database=f"favgate_test_{uuid.uuid4().hex[:12]}"
    )
    token = generate_token()
    await seed_instance(settings, account_token=token)
    async with serve(settings) as address, client(address, {"token": token}) as ws:
        operation = await ws.start("main")
        assert await ws.error(operation) == (
            ChangeStreamsUnavailable.message,
            "SUBSCRIPTIONS_UNAVAILABLE",
        )
        # The connection stays usable: the cause is the database, not the client.
        operation = await ws.start("nowhere")
        assert await ws.error(operation) == ("Instance not found", "NOT_FOUND")


# --- chat identities (issue 13) ------------------------------------------------------


async def test_a_change_names_the_resolved_chat(
    gateway: str, tenants: Tenants, storage: Storage
) -> None:
    # The instance knows the chat in its 12-digit form; a client favorites the 13-digit one.
    await storage.messages.upsert_many(
        "main", [{"id": "BR12", "chat_jid": "552187654321@s.whatsapp.net"}]
    )
    async with client(gateway, {"token": tenants.main_token}) as ws:
        operation = await ws.subscribe(type="CHAT")
        await rest_favorite(gateway, tenants.main_token, number="5521987654321", favorite=True)
        change = await ws.next(operation)
    assert (change["chatJid"], change["favorite"]) == ("552187654321@s.whatsapp.net", True)
