"""The WebSocket on ``/graphql`` cannot be turned against the server (favgate.websocket).

Most tests talk to a gateway served by uvicorn in the test's process (the helpers of
test_subscriptions); those about memory and the log run a real ``favgate serve`` process
and read its ``/proc`` status and its stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import (
    Tenants,
    collect_leaked_sockets,
    drop_database,
    free_port,
    seed_instance,
    with_database,
)
from test_subscriptions import (
    FAVORITE_CHANGED,
    PROTOCOL,
    TIMEOUT,
    client,
    open_subscriptions,
    serve,
    until,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from favgate.auth import generate_token
from favgate.config import ConfigError, Settings
from favgate.embedded import ServerProcess
from favgate.storage import Storage
from favgate.websocket import INIT_TIMEOUT

pytestmark = pytest.mark.slow

START_TIMEOUT = 30.0
HOSTILE_REPEATS = 100


@pytest.fixture
async def gateway(settings: Settings, storage: Storage) -> AsyncIterator[str]:
    async with serve(settings) as address:
        yield address


async def closed_by(
    address: str, *messages: Any, compression: str | None = "deflate"
) -> tuple[int | None, str | None]:
    """Send ``messages`` on a new connection; the close code and reason the server sent."""
    async with connect(
        f"ws://{address}/graphql",
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
        compression=compression,  # type: ignore[arg-type]
        max_size=None,
    ) as websocket:
        try:
            for message in messages:
                await websocket.send(message)
            async with asyncio.timeout(TIMEOUT):
                while True:
                    await websocket.recv()
        except ConnectionClosed:
            pass
    assert websocket.close_code is not None, "the connection closed without a close frame"
    return websocket.close_code, websocket.close_reason


def init(token: object = None) -> str:
    return json.dumps({"type": "connection_init", "payload": {"token": token}})


def subscribe(operation: str = "1", **payload: Any) -> str:
    document = {"query": FAVORITE_CHANGED, "variables": {"instance": "main"}, **payload}
    return json.dumps({"id": operation, "type": "subscribe", "payload": document})


# Messages no client of the protocol sends, each closing the connection 4400.
MALFORMED: dict[str, str | bytes] = {
    "array": "[1]",
    "string": '"x"',
    "empty object": "{}",
    "query not a string": '{"type":"subscribe","id":"1","payload":{"query":5}}',
    "not JSON": "{not json",
    "binary": b'{"type":"ping"}',
    "unknown type": json.dumps({"type": "x" * 300}),
    "type not a string": '{"type":["subscribe"]}',
    "nested too deep": "[" * 60_000,
    "payload not an object": '{"type":"subscribe","id":"1","payload":[]}',
    "variables not an object": subscribe(variables=[1]),
    "id not a string": '{"type":"complete","id":1}',
    "id too long": subscribe("x" * 200),
    "lone surrogate in init": init("\ud800"),
}


# --- connection_init: first, and authenticated ---------------------------------------


async def test_a_missing_or_wrong_token_closes_4403(gateway: str, tenants: Tenants) -> None:
    cases: list[tuple[dict[str, Any] | None, dict[str, str] | None]] = [
        ({}, None),
        ({"token": "not-a-token"}, None),
        ({"Authorization": "Bearer not-a-token"}, None),
        (None, {"token": "not-a-token"}),
        ({"token": 42}, {"token": tenants.main_token}),  # not a string: no token at all
        ({"token": "x" * 10_000}, None),
    ]
    for payload, headers in cases:
        async with connect(
            f"ws://{gateway}/graphql",
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            additional_headers=headers,
        ) as websocket:
            await websocket.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(TIMEOUT):
                    await websocket.recv()
        assert (websocket.close_code, websocket.close_reason) == (4403, "Forbidden"), payload


async def test_nothing_before_connection_init(gateway: str, tenants: Tenants) -> None:
    assert await closed_by(gateway, subscribe()) == (4401, "Unauthorized")
    assert await closed_by(gateway, '{"type":"ping"}') == (4401, "Unauthorized")
    assert await closed_by(gateway, '{"type":"complete","id":"1"}') == (4401, "Unauthorized")
    assert (await closed_by(gateway, "[1]"))[0] == 4400
    # A refused init leaves the connection closed: its subscribe is never read.
    assert await closed_by(gateway, init("not-a-token"), subscribe()) == (4403, "Forbidden")


@pytest.mark.both_drivers
async def test_a_database_away_at_connection_init_closes_1011(
    own_server: ServerProcess, driver: str
) -> None:
    settings = Settings(mongo_driver=driver, database_timeout_ms=500)  # type: ignore[arg-type]
    settings = settings.with_uri(own_server.uri)
    token = generate_token()
    await seed_instance(settings, account_token=token)
    async with serve(settings) as address:
        own_server.kill()
        assert await closed_by(address, init(token)) == (1011, "Service temporarily unavailable")
    collect_leaked_sockets()  # the lifespan closed the client while it was reconnecting


async def test_a_good_token_is_acknowledged(gateway: str, tenants: Tenants) -> None:
    async with client(gateway, {"token": tenants.main_token}) as ws:
        await ws.send({"type": "ping"})
        assert await ws.receive() == {"type": "pong"}


# --- malformed messages ----------------------------------------------------------------


@pytest.mark.parametrize("message", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_a_malformed_message_closes_4400(
    gateway: str, tenants: Tenants, message: str | bytes
) -> None:
    code, _ = await closed_by(gateway, init(tenants.main_token), message)
    assert code == 4400
    # Before connection_init too.
    code, _ = await closed_by(gateway, message)
    assert code == 4400


# Documents the parser refuses: Strawberry closes them 4400 with the error's message, which
# quotes the document (cut to fit a close frame).
UNPARSABLE = {
    "syntax error": "subscription {",
    "long syntax error": f"subscription {{ {'a' * 500}( }}",
    "too many tokens": "subscription { " + "a " * 3000 + "}",
}


@pytest.mark.parametrize("query", list(UNPARSABLE.values()), ids=list(UNPARSABLE))
async def test_a_document_that_does_not_parse_closes_4400(
    gateway: str, tenants: Tenants, query: str
) -> None:
    code, reason = await closed_by(gateway, init(tenants.main_token), subscribe(query=query))
    assert code == 4400
    assert reason is not None and reason.startswith("Syntax Error")


async def test_an_unknown_operation_name_closes_4400(gateway: str, tenants: Tenants) -> None:
    # Strawberry's reason names the operation: cut to fit, however long the name.
    message = subscribe(operationName="x" * 500)
    code, reason = await closed_by(gateway, init(tenants.main_token), message)
    assert code == 4400
    assert reason is not None and reason.startswith("Unknown operation named")


async def test_a_lone_surrogate_is_bad_user_input(gateway: str, tenants: Tenants) -> None:
    async with client(gateway, {"token": tenants.main_token}) as ws:
        for variables in ({"instance": "\ud800"}, {"instance": "main", "type": "\udfff"}):
            operation = await ws.start(**variables)
            message, code = await ws.error(operation)
            assert code == "BAD_USER_INPUT", message
        # The connection is still there, and serves.
        await ws.subscribe()


async def test_a_lone_surrogate_in_the_document_is_refused(gateway: str, tenants: Tenants) -> None:
    # Spelled with a GraphQL escape rather than a JSON one.
    query = 'subscription { favoriteChanged(instance: "\\ud800") { id } }'
    code, reason = await closed_by(
        gateway, init(tenants.main_token), subscribe(query=query, variables=None)
    )
    assert code == 4400, reason


# --- caps and costs --------------------------------------------------------------------


async def test_subscriptions_per_token_are_capped(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    token = tenants.main_token
    async with (
        serve(settings.replace(max_subscriptions_per_token=3)) as address,
        client(address, {"token": token}) as first,
    ):
        held = [await first.subscribe(), await first.subscribe()]
        async with client(address, {"token": token}) as second:
            await second.subscribe()
            before = open_subscriptions()
            refused = await second.start("main")
            assert await second.error(refused) == (
                "Subscription limit reached for this token",
                "TOO_MANY_SUBSCRIPTIONS",
            )
            assert open_subscriptions() == before
            # Another token is not held back by this one.
            async with client(address, {"token": tenants.rival_token}) as rival:
                await rival.subscribe("rival")
            # Completing one frees its place.
            await first.send({"id": held[0], "type": "complete"})
            await until(lambda: open_subscriptions() == before - 1, "the first one is closed")
            await second.subscribe()
            assert await second.error(await second.start("main")) == (
                "Subscription limit reached for this token",
                "TOO_MANY_SUBSCRIPTIONS",
            )
    # Closing the connections gave every place back; failed subscriptions take none.
    async with (
        serve(settings.replace(max_subscriptions_per_token=3)) as address,
        client(address, {"token": token}) as ws,
    ):
        for _ in range(3):
            assert await ws.error(await ws.start("nowhere")) == ("Instance not found", "NOT_FOUND")
        for _ in range(3):
            await ws.subscribe()


async def test_a_closed_connection_gives_its_places_back(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    token = tenants.main_token
    async with serve(settings.replace(max_subscriptions_per_token=2)) as address:
        for _ in range(3):
            async with client(address, {"token": token}) as ws:
                await ws.subscribe()
                await ws.subscribe()


async def test_subscriptions_per_connection_carry_a_code(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    async with (
        serve(settings.replace(max_subscriptions_per_connection=1)) as address,
        client(address, {"token": tenants.main_token}) as ws,
    ):
        await ws.subscribe()
        refused = await ws.start("main")
        assert await ws.error(refused) == ("Subscription limit reached", "TOO_MANY_SUBSCRIPTIONS")


def test_the_cap_per_token_is_a_setting() -> None:
    name = "FAVGATE_MAX_SUBSCRIPTIONS_PER_TOKEN"
    assert Settings.from_env({}).max_subscriptions_per_token == 100
    assert Settings.from_env({name: "3"}).max_subscriptions_per_token == 3
    for raw in ("0", "-1", "many"):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: raw})


async def test_a_subscription_start_costs_one_unit(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    async with (
        serve(settings.replace(rate_limit=2)) as address,
        client(address, {"token": tenants.main_token}) as ws,
    ):
        await ws.subscribe()
        await ws.subscribe()
        before = open_subscriptions()
        refused = await ws.start("main")
        assert await ws.error(refused) == ("Rate limit exceeded. Try again later.", "RATE_LIMITED")
        assert open_subscriptions() == before
        # The very budget of the token's HTTP requests.
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            response = await http.post(
                "/graphql",
                json={"query": "{ __typename }"},
                headers={"token": tenants.main_token},
            )
        assert response.status_code == 429


async def test_an_oversize_message_is_refused_by_the_app_too(
    gateway: str, tenants: Tenants, settings: Settings
) -> None:
    # Served by uvicorn at its 16 MiB default: the app's own check answers.
    big = subscribe(query="#" + "x" * settings.max_body_bytes + "\n" + FAVORITE_CHANGED)
    assert await closed_by(gateway, big) == (1009, "Message too big")
    assert await closed_by(gateway, init(tenants.main_token), big) == (1009, "Message too big")
    async with client(gateway, {"token": tenants.main_token}) as ws:
        await ws.subscribe()  # just under: served


# --- a real process: memory and the log -----------------------------------------------


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    address: str
    token: str
    log: Path

    def status(self, field: str) -> int:
        """A field of /proc/PID/status, in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")

    def reset_peak(self) -> None:
        """Make VmHWM the current VmRSS (proc(5): clear_refs)."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture(scope="module")
def served(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """``favgate serve`` at log level info, on a database of its own."""
    database = f"favgate_ws_{uuid.uuid4().hex[:12]}"
    uri, token, port = with_database(mongodb_uri, database), generate_token(), free_port()
    asyncio.run(seed_instance(Settings().with_uri(uri), instance_token=token))
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAVGATE_")}
    env |= {"MONGODB_URI": uri, "FAVGATE_RATE_LIMIT": "1000000", "PYTHONUNBUFFERED": "1"}
    env |= {"FAVGATE_LOG_LEVEL": "info"}
    command = [sys.executable, "-m", "favgate.cli", "serve", "--port", str(port)]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, env=env
        )
    try:
        wait_until_serving(proc, port, log)
        yield Process(proc, f"127.0.0.1:{port}", token, log)
    finally:
        proc.kill()
        proc.wait()
        asyncio.run(drop_database(uri))


def wait_until_serving(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"favgate serve did not start:\n{log.read_text()}")


def fragments(message: str, size: int = 8192) -> Any:
    """``message`` as a fragmented one: what ``send`` makes of an iterable."""
    return (message[start : start + size] for start in range(0, len(message), size))


async def invalid_utf8(address: str) -> int | None:
    """Send a text frame that is not UTF-8 (the client library checks nothing here)."""
    async with connect(
        f"ws://{address}/graphql",
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
    ) as websocket:
        websocket.protocol.send_text(b'{"type": "\xff"}')
        websocket.send_data()
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(TIMEOUT):
                await websocket.recv()
    return websocket.close_code


def incompressible(size: int) -> str:
    return "".join(random.choices(string.ascii_letters, k=size))


async def test_oversize_frames_are_never_buffered(served: Process) -> None:
    frame = subscribe(query="#" + incompressible(1024 * 1024) + "\n" + FAVORITE_CHANGED)
    # Warm up: a connection served in full, so that what it allocates once is counted.
    async with client(served.address, {"token": served.token}) as ws:
        await ws.start("main")
        assert await ws.silent()  # no error: the subscription is open
    served.reset_peak()
    rss_before = served.status("VmRSS")
    for fragmented, after_init in [(False, False), (False, True), (True, True)]:
        first = [init(served.token)] if after_init else []
        closes = await asyncio.gather(
            *(
                closed_by(
                    served.address,
                    *first,
                    fragments(frame) if fragmented else frame,
                    compression=None,
                )
                for _ in range(20)
            )
        )
        # A client still sending fragments may see the connection drop (1006) before it
        # reads the close frame.
        allowed = {1009, 1006} if fragmented else {1009}
        assert {code for code, _ in closes} <= allowed, closes
    peak_growth_kib = served.status("VmHWM") - rss_before
    assert peak_growth_kib < 4 * 1024, f"peak grew by {peak_growth_kib} KiB"
    assert served.status("VmRSS") - rss_before < 4 * 1024


async def test_a_silent_connection_is_closed_4408(served: Process) -> None:
    started = time.monotonic()
    async with connect(
        f"ws://{served.address}/graphql",
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
    ) as websocket:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(INIT_TIMEOUT.total_seconds() + TIMEOUT):
                await websocket.recv()
    assert websocket.close_code == 4408
    assert time.monotonic() - started < INIT_TIMEOUT.total_seconds() + 2


HOSTILE: dict[str, list[str | bytes]] = {
    **{name: [message] for name, message in MALFORMED.items()},
    **{name: [subscribe(query=query)] for name, query in UNPARSABLE.items()},
    "unknown operation": [subscribe(operationName="x" * 500)],
    "subscribe before init": [subscribe()],
    "wrong token": [init("not-a-token")],
}


async def test_hostile_messages_leave_one_line_each_at_most(served: Process) -> None:
    before = len(served.log_lines())
    events = 0
    for name, messages in HOSTILE.items():
        for _ in range(HOSTILE_REPEATS):
            first = [] if name in ("subscribe before init", "wrong token") else [init(served.token)]
            code, _ = await closed_by(served.address, *first, *messages)
            assert code in (4400, 4401, 4403), name
            events += 1
    # Refusals that keep the connection: lone surrogates, over the caps, a bad instance.
    async with client(served.address, {"token": served.token}) as ws:
        for _ in range(HOSTILE_REPEATS):
            operation = await ws.start("\ud800")
            assert (await ws.error(operation))[1] == "BAD_USER_INPUT"
            operation = await ws.start("nowhere")
            assert (await ws.error(operation))[1] == "NOT_FOUND"
        events += 1
    # Over the size cap, compressed or not, whole or in fragments; text that is not UTF-8.
    big = subscribe(query="#" + incompressible(70_000) + "\n" + FAVORITE_CHANGED)
    for _ in range(HOSTILE_REPEATS):
        assert (await closed_by(served.address, big, compression=None))[0] == 1009
        assert (await closed_by(served.address, "[" + " " * 100_000 + "]"))[0] == 1009
        assert (await closed_by(served.address, fragments(big)))[0] in (1009, 1006)
        assert await invalid_utf8(served.address) == 1007
        events += 4
    # A token in the query string (favgate reads none there) stays out of the log too.
    secret = generate_token()
    async with connect(
        f"ws://{served.address}/graphql?token={secret}",
        subprotocols=[PROTOCOL],  # type: ignore[list-item]
    ):
        events += 1
    await asyncio.sleep(0.5)  # the last lines reach the file
    new = served.log_lines()[before:]
    assert not [line for line in new if secret in line]
    assert len(new) <= events, "\n".join(new[-20:])
    assert not [line for line in new if "Traceback" in line or '"exception"' in line]
    assert not [line for line in new if json.loads(line)["level"] not in ("INFO", "DEBUG")]
