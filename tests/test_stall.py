"""A stalled database: its process stopped (SIGSTOP), not gone. Its sockets stay open and
its kernel still accepts connections, so only a per-operation deadline ends the wait.

A real ``favgate serve`` process over a database process of the test's own: while the
database is stopped, REST, GraphQL (through the rate limiter, which charges every request)
and ``/readyz`` answer "unavailable" within ``FAVGATE_DATABASE_TIMEOUT_MS`` + 1 s, the log
says so in lines without a traceback, and after SIGCONT everything answers again by
itself. The deadline must not end a change stream that is merely quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, CommandLog, Tenants, free_port, seed_instance, with_database
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

from favgate.auth import generate_token
from favgate.config import Settings
from favgate.embedded import ServerProcess
from favgate.errors import ServiceUnavailable, public_error
from favgate.resolvers.favorites import now
from favgate.storage import FavoriteTarget, FavoriteType, open_storage

pytestmark = [pytest.mark.both_drivers, pytest.mark.slow]

TIMEOUT_MS = 1000
# The bound: the deadline plus a second for everything around it.
BOUND = TIMEOUT_MS / 1000 + 1.0
RECOVERY = 10.0  # seconds after SIGCONT by which everything answers again
START_TIMEOUT = 30.0
BURST = 40

SET_FAVORITE = """
mutation ($number: String!) {
  setFavorite(instance: "main", number: $number, favorite: true) { success chatJid }
}
"""
FAVORITES = '{ favorites(instance: "main") { totalCount } }'


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    log: Path


async def wait_until_serving(gateway: Gateway) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        while time.monotonic() < deadline:
            assert gateway.proc.poll() is None, gateway.log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    pytest.fail(f"favgate serve did not start:\n{gateway.log.read_text()}")


@pytest.fixture
async def gateway(own_server: ServerProcess, driver: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    uri, token, port = with_database(own_server.uri, "favgate_stall"), generate_token(), free_port()
    await seed_instance(Settings().with_uri(uri), instance_token=token)
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAVGATE_")}
    env |= {
        "MONGODB_URI": uri,
        "FAVGATE_MONGO_DRIVER": driver,
        "FAVGATE_DATABASE_TIMEOUT_MS": str(TIMEOUT_MS),
        "FAVGATE_RATE_LIMIT": "1000000",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "favgate.cli", "serve", "--port", str(port)]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, env=env
        )
    gateway = Gateway(proc, f"http://127.0.0.1:{port}", token, log)
    try:
        await wait_until_serving(gateway)
        yield gateway
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def stopped(server: ServerProcess) -> Iterator[None]:
    """The database process stopped, as a stall stops it; always continued afterwards."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no answer at all within the client's patience
    body: Any
    seconds: float


async def timed(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Answer:
    start = time.monotonic()
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.TimeoutException:
        return Answer(None, None, time.monotonic() - start)
    return Answer(response.status_code, response.json(), time.monotonic() - start)


async def ask_everything(client: httpx.AsyncClient, token: str, number: str) -> dict[str, Answer]:
    """REST, a GraphQL mutation and query, and /readyz, at once."""
    headers = {"token": token}
    rest = {"number": number, "favorite": True}
    mutation = {"query": SET_FAVORITE, "variables": {"number": number}}
    answers = await asyncio.gather(
        timed(client, "POST", "/api/chat/favorite/main", json=rest, headers=headers),
        timed(client, "POST", "/graphql", json=mutation, headers=headers),
        timed(client, "POST", "/graphql", json={"query": FAVORITES}, headers=headers),
        timed(client, "GET", "/readyz"),
    )
    return dict(zip(["rest", "mutation", "query", "readyz"], answers, strict=True))


async def burst(client: httpx.AsyncClient, token: str) -> list[Answer]:
    """REST requests and readiness checks at once, more than motor has worker threads
    here (five per core): a ping queued behind the stalled operations still answers in
    time."""
    rest = [{"number": f"5511666{i:06d}", "favorite": True} for i in range(BURST)]
    headers = {"token": token}
    return await asyncio.gather(
        *(timed(client, "POST", "/api/chat/favorite/main", json=b, headers=headers) for b in rest),
        *(timed(client, "GET", "/readyz") for _ in range(BURST // 4)),
    )


def graphql_codes(answer: Answer) -> list[str] | None:
    if answer.status is None or "errors" not in answer.body:
        return None
    return [error["extensions"]["code"] for error in answer.body["errors"]]


def unavailable(answers: dict[str, Answer]) -> dict[str, bool]:
    """Which answers say "unavailable", each in its API's documented shape."""
    rest, readyz = answers["rest"], answers["readyz"]
    return {
        "rest": (rest.status, rest.body)
        == (503, {"success": False, "error": {"message": ServiceUnavailable.message}}),
        "mutation": answers["mutation"].status == 503
        and graphql_codes(answers["mutation"]) == ["SERVICE_UNAVAILABLE"],
        "query": answers["query"].status == 503
        and graphql_codes(answers["query"]) == ["SERVICE_UNAVAILABLE"],
        "readyz": (readyz.status, readyz.body) == (503, {"status": "unavailable"}),
    }


def all_well(answers: dict[str, Answer]) -> bool:
    return all(answer.status == 200 and "errors" not in answer.body for answer in answers.values())


async def recovered(client: httpx.AsyncClient, token: str) -> float:
    """Seconds until every API answers well again."""
    start = time.monotonic()
    attempt = 0
    while time.monotonic() - start < RECOVERY:
        attempt += 1
        if all_well(await ask_everything(client, token, f"5511888{attempt:06d}")):
            return time.monotonic() - start
        await asyncio.sleep(0.2)
    pytest.fail(f"not recovered {RECOVERY} s after SIGCONT")


async def test_a_stopped_database_is_answered_within_the_deadline_and_recovers(
    gateway: Gateway, own_server: ServerProcess
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=BOUND + 5) as client:
        # Pooled connections exist: the stall catches them open, as in production.
        assert all_well(await ask_everything(client, gateway.token, "5511777000001"))
        with stopped(own_server):
            # First on the open connections, then with the pool cleared by the timeouts:
            # new connections to a stopped process connect, then wait for its handshake.
            rounds = [
                await ask_everything(client, gateway.token, f"551177700000{i}") for i in (2, 3)
            ]
            crowd = await burst(client, gateway.token)
        recovery = await recovered(client, gateway.token)

    for answers in rounds:
        assert {name: answer.seconds <= BOUND for name, answer in answers.items()} == dict.fromkeys(
            answers, True
        ), answers
        assert unavailable(answers) == dict.fromkeys(answers, True), answers
    assert [answer for answer in crowd if answer.seconds > BOUND] == []
    assert {answer.status for answer in crowd} == {503}
    assert gateway.proc.poll() is None  # recovered by itself, not restarted
    assert recovery < RECOVERY
    assert_outage_logged(gateway)


def assert_outage_logged(gateway: Gateway) -> None:
    """Every line is JSON; the outage is logged, never with a traceback or the token."""
    text = gateway.log.read_text()
    assert gateway.token not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line for line in lines if "exception" in line] == []
    assert "Traceback" not in text
    warnings = [line["message"] for line in lines if line["level"] == "WARNING"]
    assert any(message.startswith("readiness check failed") for message in warnings)
    assert any(message.startswith("database unavailable") for message in warnings)


# --- the deadline and change streams -----------------------------------------------------

QUIET_TIMEOUT_MS = 300


async def test_a_quiet_change_stream_outlives_the_deadline(
    settings: Settings,
    tenants: Tenants,
    commands: CommandLog,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A subscription waits for changes far longer than one operation may take: the
    deadline bounds each wait for the next batch, never the stream's whole life."""
    storage = open_storage(settings.replace(database_timeout_ms=QUIET_TIMEOUT_MS))
    try:
        subscriber = await storage.changes.subscribe("main")
        try:
            await asyncio.sleep(6 * QUIET_TIMEOUT_MS / 1000)
            target = FavoriteTarget(FavoriteType.CHAT, CHAT_JID)
            await storage.favorites.set("main", target, True, now())
            change = await asyncio.wait_for(anext(subscriber), 5)
        finally:
            await subscriber.aclose()
    finally:
        await storage.close()
    assert change.target.chat_jid == CHAT_JID
    opened = [command for command in commands.commands if command == ("aggregate", "favorites")]
    assert opened == [("aggregate", "favorites")]  # one stream, never reopened
    assert [r.getMessage() for r in caplog.records if r.name == "favgate.storage.changes"] == []


# --- the one mapping of database errors ------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        NetworkTimeout("timed out"),  # a stalled server, on an open connection
        ServerSelectionTimeoutError("no server"),  # one that does not answer hellos
        ExecutionTimeout("operation exceeded time limit", 50),  # a slow one (maxTimeMS)
        WTimeoutError("waiting for replication timed out", 64),  # replicas that lag
        NotPrimaryError("not primary"),  # a failover under way
        ConnectionFailure("connection refused"),  # a database that is gone
    ],
    ids=type,
)
def test_an_unreachable_slow_or_failing_over_database_is_a_503(error: Exception) -> None:
    assert isinstance(public_error(error), ServiceUnavailable)


@pytest.mark.parametrize(
    "error",
    [
        OperationFailure("unknown operator: $bogus", 2),
        DuplicateKeyError("E11000 duplicate key", 11000),
    ],
    ids=type,
)
def test_a_database_error_that_is_no_outage_is_a_bug(error: Exception) -> None:
    assert public_error(error) is None
