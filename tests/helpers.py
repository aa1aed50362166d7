"""What the tests share besides fixtures (those are in conftest.py): the tenants' names and
tokens, the app inside its lifespan, the command log, seeding, ports and URIs; then, for
the tests that drive a real ``favgate serve`` process with real clients, the gateway on a
database of its own with one seeded tenant, the Node scripts of ``tests/js`` (the npm
harness: ``make test`` installs it with ``npm ci``), and Debian's Chromium.

Import from here (``from helpers import ...``), never from conftest."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from pymongo import monitoring
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from favgate.app import create_app
from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.storage import InstanceStatus, open_storage

# --- Tenants, the app, the command log, seeding -------------------------------------------


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


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a fresh app built from ``settings``, inside the app's lifespan."""
    application = create_app(settings)
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=LifespanApp(application, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as c:
            yield c


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
        # Called with each reply of the test's database, as the driver receives it, before
        # the caller goes on: a test's way into the gap between two commands.
        self.on_reply: Callable[[monitoring.CommandSucceededEvent], None] | None = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.active and event.database_name == self.database:
            self.documents.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if self.active and event.database_name == self.database and self.on_reply is not None:
            self.on_reply(event)

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


# --- A real favgate serve, Node and Chromium ----------------------------------------------

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium")
# Debian's chromium, headless, in a container, never phoning home.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
NODE_TIMEOUT = 120.0
INSTANCE = "main"

needs_node = pytest.mark.skipif(
    NODE is None, reason="Node.js is not installed (apt-get install -y nodejs npm); .ci/run does"
)

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install -y chromium); .ci/run installs it",
)


@dataclass(frozen=True)
class Gateway:
    """A running ``favgate serve``: its base URL, and an account token reaching INSTANCE."""

    url: str
    token: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@asynccontextmanager
async def favgate_serve(
    mongodb_uri: str, log: Path, env: Mapping[str, str] | None = None
) -> AsyncIterator[Gateway]:
    """``favgate serve`` on a free port and a fresh database seeded with account "acme" and
    its connected instance INSTANCE, ready for requests; ``env`` adds FAVGATE_* settings.
    Stopped with SIGTERM (killed if it hangs) and its database dropped on the way out."""
    uri = with_database(mongodb_uri, f"favgate_clients_{uuid.uuid4().hex[:12]}")
    token = generate_token()
    await seed_instance(Settings().with_uri(uri), account_token=token, instance=INSTANCE)
    # A budget no client's requests exhaust here: the rate limit has tests of its own.
    process = ServeProcess(
        {"MONGODB_URI": uri, "FAVGATE_RATE_LIMIT": "1000000", **(env or {})}, log
    )
    try:
        async with httpx.AsyncClient() as client:
            await process.wait_until_ready(client)
        yield Gateway(process.url, token, log)
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):  # killed: it is gone either way
            process.stop()
        await drop_database(uri)


async def drop_database(uri: str) -> None:
    """Drop the database ``uri`` names."""
    storage = open_storage(Settings().with_uri(uri))
    try:
        await storage.drop_database()
    finally:
        await storage.close()


def spawn_serve(
    port: int, env: Mapping[str, str], log: Path, mode: str = "wb"
) -> subprocess.Popen[bytes]:
    """``favgate serve`` on ``port`` in a process of its own, with ``env`` for settings (none
    of the test run's own ``FAVGATE_`` variables) and its output in ``log``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FAVGATE_")}
    environ |= {"PYTHONUNBUFFERED": "1", **env}
    command = [sys.executable, "-m", "favgate.cli", "serve", "--port", str(port)]
    with log.open(mode) as output:
        return subprocess.Popen(
            command, env=environ, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )


class ServeProcess:
    """``favgate serve`` in a process of its own on a free port (``spawn_serve``), its
    output in ``log``."""

    def __init__(self, env: Mapping[str, str], log: Path, mode: str = "wb") -> None:
        self.port = free_port()
        self.log = log
        self.terminated = False
        self.proc = spawn_serve(self.port, env, log, mode)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_until_ready(self, client: httpx.AsyncClient) -> None:
        """Until ``/readyz`` answers 200; fails the test if the process exits first."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if (await client.get(f"{self.url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        pytest.fail(f"serve not ready after {START_TIMEOUT:g} s:\n{self.output()}")

    def terminate(self) -> None:
        """SIGTERM, once: a second one would cut the graceful shutdown short."""
        if not self.terminated and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.terminated = True

    def stop(self) -> int:
        """Terminate and wait for the exit code; killed, and TimeoutExpired, if it hangs."""
        self.terminate()
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: nothing is cleaned up, no lease is handed over."""
        self.proc.kill()
        self.proc.wait()


async def run_node(script: str, *args: str, token: str) -> Any:
    """Run ``tests/js/<script>`` with the token in FAVGATE_TOKEN (never on a command line);
    the JSON document it prints on stdout. Fails the test on a non-zero exit."""
    assert NODE is not None
    if not (JS / "node_modules" / ".package-lock.json").exists():
        pytest.fail("the npm harness is not installed: run `make test`, or `npm ci` in tests/js")
    proc = await asyncio.create_subprocess_exec(
        NODE,
        script,
        *args,
        cwd=JS,
        env={**os.environ, "FAVGATE_TOKEN": token},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), NODE_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"node {script} did not finish in {NODE_TIMEOUT:g} s")
    assert proc.returncode == 0, f"node {script} exited {proc.returncode}:\n{stderr.decode()}"
    return json.loads(stdout)
