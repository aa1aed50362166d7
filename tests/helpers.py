"""Shared by the tests that drive a real ``favgate serve`` process with real clients: the
gateway on a database of its own with one seeded tenant, the Node scripts of ``tests/js``
(the npm harness: ``make test`` installs it with ``npm ci``), and Debian's Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port, seed_instance, with_database

from favgate.auth import generate_token
from favgate.config import Settings
from favgate.storage import open_storage

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
    token, port = generate_token(), free_port()
    await seed_instance(Settings().with_uri(uri), account_token=token, instance=INSTANCE)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FAVGATE_")}
    # A budget no client's requests exhaust here: the rate limit has tests of its own.
    environ |= {"MONGODB_URI": uri, "FAVGATE_RATE_LIMIT": "1000000", "PYTHONUNBUFFERED": "1"}
    environ |= dict(env or {})
    command = [sys.executable, "-m", "favgate.cli", "serve", "--port", str(port)]
    with log.open("wb") as output:
        proc = subprocess.Popen(
            command, env=environ, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", token, log)
    try:
        await _wait_until_ready(proc, gateway)
        yield gateway
    finally:
        _stop(proc)
        storage = open_storage(Settings().with_uri(uri))
        try:
            await storage.drop_database()
        finally:
            await storage.close()


async def _wait_until_ready(proc: subprocess.Popen[bytes], gateway: Gateway) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"serve exited with {proc.returncode}:\n{gateway.output()}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"serve not ready after {START_TIMEOUT:g} s:\n{gateway.output()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
