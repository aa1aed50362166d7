"""The ``favgate`` command line, in process, against a real database.

``main()`` runs ``asyncio.run`` itself, so these tests are plain functions: no event loop
is running while a synchronous test runs, even with the session-scoped loop of the async
tests (which pytest-asyncio sets again around every async test).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import with_database
from pymongo import MongoClient
from pymongo.database import Database

from favgate.auth import hash_token
from favgate.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHAT_JID = "5511999999999@s.whatsapp.net"

Document = dict[str, Any]


@pytest.fixture
def cli_uri(mongodb_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = with_database(mongodb_uri, f"favgate_cli_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MONGODB_URI", uri)
    monkeypatch.delenv("FAVGATE_MONGO_DRIVER", raising=False)
    yield uri
    client: MongoClient[Document] = MongoClient(uri)
    with client:
        client.drop_database(client.get_default_database())


@pytest.fixture
def db(cli_uri: str) -> Iterator[Database[Document]]:
    client: MongoClient[Document] = MongoClient(cli_uri, tz_aware=True)
    with client:
        yield client.get_default_database()


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    @property
    def out(self) -> Any:
        return json.loads(self.stdout)

    @property
    def err(self) -> Any:
        return json.loads(self.stderr)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    capsys.readouterr()  # start from clean buffers
    status = main(list(argv))
    captured = capsys.readouterr()
    return Run(status, captured.out, captured.err)


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    result = run(capsys, *argv)
    assert (result.status, result.stderr) == (0, ""), result
    return result.out


def fails(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 1) -> str:
    """The error message of a failing command, checking the status and the output shape."""
    result = run(capsys, *argv)
    assert (result.status, result.stdout) == (status, ""), result
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1
    error = result.err
    assert list(error) == ["error"] and isinstance(error["error"], str)
    return str(error["error"])


def message_docs(db: Database[Document], instance: str = "main") -> dict[str, Document]:
    docs = db.messages.find({"instance": instance}, {"_id": 0})
    return {doc["id"]: doc for doc in docs}


def jsonl(*messages: Document) -> str:
    return "".join(json.dumps(message) + "\n" for message in messages)


@pytest.fixture
def acme(capsys: pytest.CaptureFixture[str], cli_uri: str) -> None:
    ok(capsys, "account", "create", "acme")


@pytest.fixture
def main_instance(capsys: pytest.CaptureFixture[str], acme: None) -> None:
    ok(capsys, "instance", "create", "main", "--account", "acme")


# accounts


@pytest.mark.parametrize("driver", ["motor", "pymongo"])
def test_account_create_prints_a_working_token(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    db: Database[Document],
    driver: str,
) -> None:
    monkeypatch.setenv("FAVGATE_MONGO_DRIVER", driver)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # main() may call asyncio.run here
    out = ok(capsys, "account", "create", "acme")
    assert list(out) == ["account", "token"]
    assert out["account"] == "acme"
    assert isinstance(out["token"], str) and len(out["token"]) >= 32
    account = db.accounts.find_one({"name": "acme"})
    assert account is not None
    assert account["token_hashes"] == [hash_token(out["token"])]
    assert out["token"] not in json.dumps(account, default=str)  # only the hash is stored
    assert db.accounts.find_one({"token_hashes": hash_token(out["token"])})["name"] == "acme"


def test_account_tokens_differ(capsys: pytest.CaptureFixture[str], cli_uri: str) -> None:
    first = ok(capsys, "account", "create", "acme")["token"]
    second = ok(capsys, "account", "create", "globex")["token"]
    assert first != second


def test_duplicate_account_fails(
    capsys: pytest.CaptureFixture[str], db: Database[Document], acme: None
) -> None:
    assert fails(capsys, "account", "create", "acme") == "Account already exists: acme"
    assert db.accounts.count_documents({"name": "acme"}) == 1


# instances


def test_instance_create_defaults_to_connected(
    capsys: pytest.CaptureFixture[str], db: Database[Document], acme: None
) -> None:
    out = ok(capsys, "instance", "create", "main", "--account", "acme")
    assert list(out) == ["instance", "account", "status", "token"]
    assert out | {"token": "?"} == {
        "instance": "main",
        "account": "acme",
        "status": "connected",
        "token": "?",
    }
    instance = db.instances.find_one({"name": "main"})
    assert instance is not None
    assert (instance["account"], instance["status"]) == ("acme", "connected")
    assert instance["token_hashes"] == [hash_token(out["token"])]


def test_instance_create_with_explicit_status(
    capsys: pytest.CaptureFixture[str], db: Database[Document], acme: None
) -> None:
    out = ok(capsys, "instance", "create", "off", "--account", "acme", "--status", "disconnected")
    assert out["status"] == "disconnected"
    assert db.instances.find_one({"name": "off"})["status"] == "disconnected"
    out = ok(capsys, "instance", "create", "on", "--account", "acme", "--status", "connected")
    assert out["status"] == "connected"
    assert db.instances.find_one({"name": "on"})["status"] == "connected"


def test_instance_create_for_unknown_account_fails(
    capsys: pytest.CaptureFixture[str], db: Database[Document]
) -> None:
    assert fails(capsys, "instance", "create", "main", "--account", "ghost") == "Account not found"
    assert db.instances.count_documents({}) == 0


def test_duplicate_instance_fails(
    capsys: pytest.CaptureFixture[str], db: Database[Document], main_instance: None
) -> None:
    assert fails(capsys, "instance", "create", "main", "--account", "acme") == (
        "Instance already exists: main"
    )
    assert db.instances.count_documents({}) == 1


def test_instance_status_switches_both_ways(
    capsys: pytest.CaptureFixture[str], db: Database[Document], main_instance: None
) -> None:
    before = db.instances.find_one({"name": "main"})
    out = ok(capsys, "instance", "status", "main", "disconnected")
    assert out == {"instance": "main", "status": "disconnected"}
    after = db.instances.find_one({"name": "main"})
    assert after["status"] == "disconnected"
    assert after["updated_at"] >= before["updated_at"]
    assert after["token_hashes"] == before["token_hashes"]  # the token keeps working
    assert ok(capsys, "instance", "status", "main", "connected")["status"] == "connected"
    assert db.instances.find_one({"name": "main"})["status"] == "connected"
    # Setting the status it already has is fine too.
    assert ok(capsys, "instance", "status", "main", "connected")["status"] == "connected"


def test_instance_status_of_unknown_instance_fails(
    capsys: pytest.CaptureFixture[str], db: Database[Document]
) -> None:
    assert fails(capsys, "instance", "status", "ghost", "connected") == "Instance not found: ghost"


@pytest.mark.parametrize(
    "argv",
    [
        ["instance", "status", "main", "online"],
        ["instance", "create", "main", "--account", "acme", "--status", "up"],
        ["instance", "create", "main"],
        ["account", "create"],
        ["messages", "import", "file.jsonl"],
        ["bogus"],
        [],
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], cli_uri: str, argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: favgate" in capsys.readouterr().err


# messages import


MESSAGES = [
    {
        "id": "M1",
        "chat_jid": "+55 11 99999-9999",
        "from_me": False,
        "timestamp": "2026-01-05T12:00:00Z",
        "text": "hello",
        "pushName": "Ana",
    },
    {"id": "M2", "chat_jid": CHAT_JID, "from_me": True, "timestamp": 1767614460, "text": "hi"},
]


def test_import_from_a_file(
    capsys: pytest.CaptureFixture[str],
    db: Database[Document],
    main_instance: None,
    tmp_path: Path,
) -> None:
    path = tmp_path / "messages.jsonl"
    path.write_text(jsonl(*MESSAGES) + "\n", encoding="utf-8")
    assert ok(capsys, "messages", "import", "--instance", "main", str(path)) == {"imported": 2}
    docs = message_docs(db)
    assert docs == {
        "M1": {
            "instance": "main",
            "id": "M1",
            "chat_jid": CHAT_JID,
            "from_me": False,
            "timestamp": datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
            "text": "hello",
            "pushName": "Ana",
        },
        "M2": {
            "instance": "main",
            "id": "M2",
            "chat_jid": CHAT_JID,
            "from_me": True,
            "timestamp": datetime(2026, 1, 5, 12, 1, tzinfo=UTC),
            "text": "hi",
        },
    }


def test_import_from_stdin(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    db: Database[Document],
    main_instance: None,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(jsonl(*MESSAGES)))
    assert ok(capsys, "messages", "import", "--instance", "main", "-") == {"imported": 2}
    assert set(message_docs(db)) == {"M1", "M2"}


def test_import_of_nothing_imports_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    db: Database[Document],
    main_instance: None,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n  \n"))
    assert ok(capsys, "messages", "import", "--instance", "main", "-") == {"imported": 0}
    assert message_docs(db) == {}


def test_reimport_is_an_upsert(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    db: Database[Document],
    main_instance: None,
    tmp_path: Path,
) -> None:
    path = tmp_path / "messages.jsonl"
    path.write_text(jsonl(*MESSAGES), encoding="utf-8")
    ok(capsys, "messages", "import", "--instance", "main", str(path))
    # Something else (the upstream engine) added a field favgate does not know.
    db.messages.update_one({"instance": "main", "id": "M1"}, {"$set": {"status": "READ"}})

    edited = {**MESSAGES[0], "text": "hello, edited", "starred": True}
    for omitted in ("pushName", "timestamp", "from_me"):
        del edited[omitted]
    monkeypatch.setattr("sys.stdin", io.StringIO(jsonl(edited, MESSAGES[1])))
    assert ok(capsys, "messages", "import", "--instance", "main", "-") == {"imported": 2}

    docs = message_docs(db)
    assert db.messages.count_documents({}) == 2
    assert docs["M1"]["text"] == "hello, edited"
    assert docs["M1"]["starred"] is True
    assert docs["M1"]["pushName"] == "Ana"  # from the first import
    assert docs["M1"]["from_me"] is False  # omitted fields are left alone
    assert docs["M1"]["timestamp"] == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert docs["M1"]["status"] == "READ"  # from someone else
    assert docs["M2"]["text"] == "hi"


def test_import_is_per_instance(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    db: Database[Document],
    main_instance: None,
) -> None:
    ok(capsys, "instance", "create", "other", "--account", "acme")
    for instance in ["main", "other"]:
        # An "instance" field in the line does not redirect the message elsewhere.
        line = jsonl({**MESSAGES[1], "instance": "main", "text": instance})
        monkeypatch.setattr("sys.stdin", io.StringIO(line))
        ok(capsys, "messages", "import", "--instance", instance, "-")
    assert db.messages.count_documents({}) == 2
    assert message_docs(db, "main")["M2"]["text"] == "main"
    assert message_docs(db, "other")["M2"]["text"] == "other"


def test_import_of_invalid_lines_fails_naming_the_line_and_imports_nothing(
    capsys: pytest.CaptureFixture[str],
    db: Database[Document],
    main_instance: None,
    tmp_path: Path,
) -> None:
    path = tmp_path / "messages.jsonl"
    bad_lines = [
        ("{not json", "line 3: "),
        (json.dumps({"id": "M3", "chat_jid": CHAT_JID, "from_me": 1}), "line 3: from_me"),
        (json.dumps({"id": "M3"}), "line 3: chat_jid must be a non-empty string"),
        (json.dumps({"id": "M3", "chat_jid": CHAT_JID, "timestamp": 10**30}), "line 3: "),
    ]
    for bad, expected in bad_lines:
        path.write_text(jsonl(MESSAGES[0]) + "\n" + bad + "\n" + jsonl(MESSAGES[1]))
        assert fails(capsys, "messages", "import", "--instance", "main", str(path)).startswith(
            expected
        )
    assert db.messages.count_documents({}) == 0


def test_import_into_unknown_instance_fails(
    capsys: pytest.CaptureFixture[str],
    db: Database[Document],
    acme: None,
    tmp_path: Path,
) -> None:
    path = tmp_path / "messages.jsonl"
    path.write_text(jsonl(*MESSAGES))
    error = fails(capsys, "messages", "import", "--instance", "ghost", str(path))
    assert error == "Instance not found: ghost"
    assert db.messages.count_documents({}) == 0


def test_import_of_missing_file_fails(
    capsys: pytest.CaptureFixture[str], main_instance: None, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.jsonl"
    error = fails(capsys, "messages", "import", "--instance", "main", str(missing))
    assert error == f"Cannot read {missing}: No such file or directory"
    assert "Cannot read" in fails(capsys, "messages", "import", "--instance", "main", str(tmp_path))


# schema and configuration


def test_schema_prints_the_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    from favgate.schema import schema

    committed = ROOT / "schema.graphql"
    expected = committed.read_text() if committed.exists() else schema.as_str() + "\n"
    result = run(capsys, "schema")
    assert (result.status, result.stderr) == (0, "")
    assert result.stdout == expected


def test_schema_needs_no_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    assert run(capsys, "--data-dir", str(tmp_path), "schema").status == 0
    assert list(tmp_path.iterdir()) == []  # no embedded server was started


def test_bad_driver_setting_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cli_uri: str
) -> None:
    monkeypatch.setenv("FAVGATE_MONGO_DRIVER", "mongoose")
    error = fails(capsys, "account", "create", "acme", status=2)
    assert error.startswith("FAVGATE_MONGO_DRIVER must be one of motor, pymongo")


def test_bad_uri_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_URI", "postgres://localhost/favgate")
    assert fails(capsys, "account", "create", "acme", status=2).startswith(
        "MONGODB_URI is not a valid MongoDB URI"
    )


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_database_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"mongodb://127.0.0.1:{unused_port()}/favgate?directConnection=true"
    monkeypatch.setenv("MONGODB_URI", uri)
    monkeypatch.setenv("FAVGATE_DATABASE_TIMEOUT_MS", "300")
    assert fails(capsys, "account", "create", "acme").startswith("Database error: ")


def test_database_name_comes_from_the_uri(
    capsys: pytest.CaptureFixture[str], cli_uri: str, db: Database[Document]
) -> None:
    ok(capsys, "account", "create", "acme")
    assert db.name.startswith("favgate_cli_")
    assert db.accounts.count_documents({}) == 1


# the embedded database


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def server_pids(data_dir: Path) -> set[int]:
    """Live processes serving data_dir: their command line names its storage directory."""
    storage = str((data_dir / "db").resolve()).encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:  # it exited meanwhile
                continue
            if storage in arguments:
                pids.add(int(entry.name))
    return pids


@contextmanager
def watch_servers(data_dir: Path) -> Iterator[set[int]]:
    """The pids of the servers that ran on data_dir while the block ran.

    Polled from /proc: a command advertises its server in embedded.json only for the few
    milliseconds its work takes, but the server lives from start-up to shutdown.
    """
    seen: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(server_pids(data_dir))
            done.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


@pytest.mark.slow
def test_commands_share_the_embedded_database_on_disk(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.delenv("FAVGATE_MONGO_DRIVER", raising=False)
    data_dir = tmp_path / "data"
    with watch_servers(data_dir) as first:
        assert ok(capsys, "--data-dir", str(data_dir), "account", "create", "acme")["account"]
    assert not (data_dir / "embedded.json").exists()
    with watch_servers(data_dir) as second:
        # It finds the account only if its server reads what the first one wrote.
        argv = ["instance", "create", "main", "--account", "acme"]
        assert ok(capsys, "--data-dir", str(data_dir), *argv)["status"] == "connected"
    assert not (data_dir / "embedded.json").exists()

    assert len(first) == 1 and len(second) == 1
    assert first != second  # each command started and stopped a server of its own
    assert not any(pid_alive(pid) for pid in first | second)
    assert server_pids(data_dir) == set()
