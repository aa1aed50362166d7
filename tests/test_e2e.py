"""End to end: the real ``favgate serve --demo`` process on the embedded database, over a
real socket, driven only by what its banner prints."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from helpers import free_port
from pymongo import MongoClient

pytestmark = pytest.mark.slow

BANNER_TIMEOUT = 60.0
EXIT_TIMEOUT = 30.0
CHAT_JID = "5511999999999@s.whatsapp.net"
MESSAGE_ID = "3EB08FCF27E532F1B0F5"
# One request of the banner: URL, instance token and JSON body, as a shell would read them.
CURL = re.compile(
    r'curl -X POST "(?P<url>[^"]+)" \\\n'
    r'\s+-H "token: (?P<token>[^"]+)" -H "Content-Type: application/json" \\\n'
    r"\s+-d '(?P<body>[^']+)'"
)
SET_FAVORITE = """
mutation ($number: String!) {
  setFavorite(instance: "demo", number: $number, favorite: true) {
    success message chatJid messageId favorite type
  }
}
"""
FAVORITES = '{ favorites(instance: "demo") { totalCount edges { node { type chatJid } } } }'


def ok(message: str, message_id: str | None, favorite: bool) -> dict[str, Any]:
    return {
        "success": True,
        "message": message,
        "chat_jid": CHAT_JID,
        "message_id": message_id,
        "favorite": favorite,
        "type": "chat" if message_id is None else "message",
    }


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cli_env() -> dict[str, str]:
    """This environment without MONGODB_URI or FAVGATE_*: the embedded database, defaults."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name != "MONGODB_URI" and not name.startswith("FAVGATE_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def favgate(*argv: str) -> list[str]:
    return [sys.executable, "-m", "favgate.cli", *argv]


@dataclass
class Serve:
    """One ``favgate serve`` process, its stdout read line by line on a thread."""

    proc: subprocess.Popen[str]
    log: Path
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    stdout: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def banner(self) -> str:
        """stdout up to the banner's last line, waiting at most BANNER_TIMEOUT seconds."""
        deadline = time.monotonic() + BANNER_TIMEOUT
        while not any(line.startswith("GraphiQL:") for line in self.stdout):
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no banner after {BANNER_TIMEOUT:g} s:\n{self.output()}")
            if line is None:
                pytest.fail(f"serve exited with {self.proc.wait()}:\n{self.output()}")
            self.stdout.append(line)
        return "".join(self.stdout)

    def output(self) -> str:
        return "".join(self.stdout) + "\n--- stderr ---\n" + self.log.read_text()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(EXIT_TIMEOUT)


@dataclass
class Processes:
    """Everything the test started, killed at teardown if it is still running."""

    tmp_path: Path
    serves: list[Serve] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    logs: list[IO[str]] = field(default_factory=list)
    database_pids: set[int] = field(default_factory=set)

    def serve(self, data_dir: Path, port: int) -> Serve:
        log = self.tmp_path / f"serve-{len(self.serves)}.log"
        log_file = open(log, "w")  # noqa: SIM115 - closed at teardown
        self.logs.append(log_file)
        argv = ["serve", "--demo", "--port", str(port), "--data-dir", str(data_dir)]
        proc = subprocess.Popen(
            favgate(*argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=cli_env(),
        )
        serve = Serve(proc, log)
        self.serves.append(serve)
        reader = threading.Thread(target=serve.read, daemon=True)
        reader.start()
        self.threads.append(reader)
        return serve

    def close(self) -> None:
        for serve in self.serves:
            if serve.proc.poll() is None:
                serve.proc.kill()
                serve.proc.wait()
        for pid in self.database_pids:  # orphaned if its favgate was killed
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        for thread in self.threads:
            thread.join(10)
        for serve in self.serves:
            assert serve.proc.stdout is not None
            serve.proc.stdout.close()
        for log in self.logs:
            log.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.close()


@dataclass(frozen=True)
class Banner:
    base_url: str
    account_token: str
    instance_token: str
    requests: list[tuple[str, dict[str, str], bytes]]  # url, headers, body


def parse_banner(text: str) -> Banner:
    requests = []
    for match in CURL.finditer(text):
        headers = {"token": match["token"], "Content-Type": "application/json"}
        requests.append((match["url"], headers, match["body"].encode()))
    assert len(requests) == 2, text
    account = re.search(r"account token:\s+(\S+)", text)
    instance = re.search(r"instance token:\s+(\S+)", text)
    graphiql = re.search(r"GraphiQL: (\S+)/graphql", text)
    assert account and instance and graphiql, text
    assert {headers["token"] for _, headers, _ in requests} == {instance[1]}
    return Banner(graphiql[1], account[1], instance[1], requests)


def embedded_state(data_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((data_dir / "embedded.json").read_text())
    return state


def message_count(uri: str) -> int:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    with client:
        return client["favgate"].messages.count_documents({"instance": "demo"})


def test_serve_demo_end_to_end(processes: Processes, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    serve = processes.serve(data_dir, free_port())
    banner = parse_banner(serve.banner())
    state = embedded_state(data_dir)
    database_pid = state["pid"]
    processes.database_pids.add(database_pid)
    assert pid_alive(database_pid)
    messages = message_count(state["uri"])
    assert messages == 3

    (chat_url, chat_headers, chat_body), (message_url, message_headers, message_body) = (
        banner.requests
    )
    with httpx.Client(timeout=10) as client:
        response = client.post(chat_url, headers=chat_headers, content=chat_body)
        assert (response.status_code, response.json()) == (
            200,
            ok("Chat favorited successfully", None, True),
        )
        response = client.post(message_url, headers=message_headers, content=message_body)
        assert (response.status_code, response.json()) == (
            200,
            ok("Message favorited successfully", MESSAGE_ID, True),
        )
        remove = json.dumps({**json.loads(message_body), "favorite": False}).encode()
        response = client.post(message_url, headers=message_headers, content=remove)
        assert (response.status_code, response.json()) == (
            200,
            ok("Message unfavorited successfully", MESSAGE_ID, False),
        )

        for probe in ["/healthz", "/readyz"]:
            response = client.get(banner.base_url + probe)
            assert (response.status_code, response.json()) == (200, {"status": "ok"})

        graphql = banner.base_url + "/graphql"
        account = {"token": banner.account_token}
        variables = {"number": "+55 (11) 99999-9999"}
        response = client.post(
            graphql, headers=account, json={"query": SET_FAVORITE, "variables": variables}
        )
        assert response.status_code == 200
        assert response.json() == {
            "data": {
                "setFavorite": {
                    "success": True,
                    "message": "Chat favorited successfully",
                    "chatJid": CHAT_JID,
                    "messageId": None,
                    "favorite": True,
                    "type": "CHAT",
                }
            }
        }
        response = client.post(graphql, headers=account, json={"query": FAVORITES})
        assert response.json() == {
            "data": {
                "favorites": {
                    "totalCount": 1,
                    "edges": [{"node": {"type": "CHAT", "chatJid": CHAT_JID}}],
                }
            }
        }

        # Another command finds the running embedded server and changes the status in it.
        status = subprocess.run(
            favgate("--data-dir", str(data_dir), "instance", "status", "demo", "disconnected"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
            check=False,
        )
        changed = time.monotonic()
        assert (status.returncode, status.stderr) == (0, ""), status
        assert json.loads(status.stdout) == {"instance": "demo", "status": "disconnected"}
        assert embedded_state(data_dir) == state  # the same server, still advertised
        assert pid_alive(database_pid)

        while True:
            response = client.post(chat_url, headers=chat_headers, content=chat_body)
            if response.status_code != 200 or time.monotonic() - changed > 2:
                break
            time.sleep(0.1)
        assert time.monotonic() - changed <= 2
        assert (response.status_code, response.json()) == (
            503,
            {"success": False, "error": {"message": "Instance is not connected to WhatsApp"}},
        )

    # SIGTERM: uvicorn drains, then favgate turns the signal into SystemExit(128 + 15)
    # so that the embedded server is stopped on the way out.
    assert serve.terminate() == 128 + signal.SIGTERM
    assert not pid_alive(database_pid)
    assert not (data_dir / "embedded.json").exists()
    assert "Application shutdown complete" in serve.log.read_text()

    # Again on the same data: fresh tokens, the demo instance connected again, no duplicates.
    again = processes.serve(data_dir, free_port())
    second = parse_banner(again.banner())
    state = embedded_state(data_dir)
    processes.database_pids.add(state["pid"])
    assert message_count(state["uri"]) == messages
    assert {second.account_token, second.instance_token}.isdisjoint(
        {banner.account_token, banner.instance_token}
    )
    url, headers, body = second.requests[0]
    with httpx.Client(timeout=10) as client:
        response = client.post(url, headers=headers, content=body)
        assert (response.status_code, response.json()) == (
            200,
            ok("Chat favorited successfully", None, True),
        )
        response = client.post(url, headers=chat_headers, content=body)  # the first run's
        assert (response.status_code, response.json()) == (
            401,
            {"success": False, "error": {"message": "Invalid token"}},
        )
    assert again.terminate() == 128 + signal.SIGTERM
    assert not pid_alive(state["pid"])
