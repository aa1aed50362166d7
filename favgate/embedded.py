"""The embedded default database: a SecantusDB server run as a child process.

SecantusDB is GPL-2.0, so favgate never imports it: it only runs the ``secantusd-py``
executable and talks to it over the MongoDB wire protocol, as it would to any mongod.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, Self

from pymongo import MongoClient
from pymongo.errors import PyMongoError

SERVER_EXECUTABLE = "secantusd-py"
INSTALL_HINT = "install it with: pip install 'favgate[embedded]'"
MEMORY_STORAGE = ":memory:"
HOST = "127.0.0.1"
STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
LOG_FILE = "secantusd.log"
STORAGE_DIR = "db"
_READY_POLL_SECONDS = 0.1
_LOCK_POLL_SECONDS = 0.2
_LOG_TAIL_BYTES = 4000


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server's executable is missing, it failed to start, or was not ready."""


def find_server_executable() -> str:
    """Path of secantusd-py, looked up next to sys.executable first, then on PATH."""
    # favgate is often run as venv/bin/favgate without activating the venv: secantusd-py is
    # then installed in that same bin directory but not on PATH.
    candidate = Path(sys.executable).parent / SERVER_EXECUTABLE
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(SERVER_EXECUTABLE)
    if found is None:
        raise EmbeddedDatabaseError(f"{SERVER_EXECUTABLE} not found; {INSTALL_HINT}")
    return found


def _answers_ping(uri: str, timeout: float = 1.0) -> bool:
    """Whether a MongoDB server at uri answers a ping within timeout seconds."""
    ms = max(1, int(timeout * 1000))
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
    )
    with client:
        try:
            client.admin.command("ping")
        except PyMongoError:
            return False
    return True


def _free_port() -> int:
    # Racy by nature: another process may take the port before the server binds it, and
    # start() then fails (port in use) rather than mistaking a stranger for our server.
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR ignores TIME_WAIT leftovers of our own previous server on this port, so
    # only a live listener counts: one that would answer our readiness ping in our stead.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class ServerProcess:
    """One secantusd-py child process on 127.0.0.1."""

    def __init__(
        self,
        storage_path: str | os.PathLike[str],
        port: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        raw = os.fspath(storage_path)
        # Absolute, so that the child's working directory does not matter.
        self.storage_path = raw if raw == MEMORY_STORAGE else str(Path(raw).resolve())
        self.port = _free_port() if port is None else port
        self.uri = f"mongodb://{HOST}:{self.port}/?directConnection=true"
        # None: an anonymous temporary file, kept only so errors can quote the log tail.
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self._log_start = 0

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise EmbeddedDatabaseError("the server process has not been started")
        return self._proc.pid

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers a ping; raise if it cannot."""
        if self._proc is not None and self._proc.poll() is None:
            raise EmbeddedDatabaseError(f"server already running (pid {self._proc.pid})")
        executable = find_server_executable()
        if not _port_is_free(self.port):
            raise EmbeddedDatabaseError(f"port {self.port} on {HOST} is already in use")
        self._open_log()
        try:
            self._spawn(executable)
            self._wait_until_ready(timeout)
        except BaseException:
            self.kill()  # it never served anyone, and WiredTiger survives a crash anyway
            raise

    def _open_log(self) -> None:
        self._close_log()
        if self.log_path is None:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _close_log
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a+b")  # noqa: SIM115 - closed by _close_log
        # Appending keeps earlier runs' logs; the tail quoted in errors starts at this run.
        self._log_start = os.fstat(self._log.fileno()).st_size

    def _spawn(self, executable: str) -> None:
        command = [executable, "--host", HOST, "--port", str(self.port)]
        command += ["--storage-path", self.storage_path]
        try:
            # A session of its own keeps a terminal's Ctrl-C (sent to the foreground process
            # group) away from the server, so that favgate can stop it cleanly.
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise EmbeddedDatabaseError(f"could not run {executable}: {exc}") from exc

    def _wait_until_ready(self, timeout: float) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if proc.poll() is not None:
                raise self._error(f"exited with status {proc.returncode} before it was ready")
            if _answers_ping(self.uri, min(0.5, remaining)):
                return
            time.sleep(_READY_POLL_SECONDS)
        raise self._error(f"was not ready after {timeout:g} s")

    def _error(self, what: str) -> EmbeddedDatabaseError:
        message = f"{SERVER_EXECUTABLE} ({self.storage_path}, port {self.port}) {what}"
        return EmbeddedDatabaseError(f"{message}; log tail:\n{self.log_tail()}")

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The end of this run's server log (empty once the server is stopped)."""
        if self._log is None:
            return ""
        # pread leaves the file offset alone: the child shares it and is still writing.
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        start = max(self._log_start, size - max_bytes)
        return os.pread(fd, size - start, start).decode(errors="replace")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM so WiredTiger closes cleanly, SIGKILL after timeout; idempotent."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would; the process is reaped before returning."""
        self._end(signal.SIGKILL, None)

    def _end(self, signum: signal.Signals, timeout: float | None) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._signal(signum)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        self._close_log()

    def _signal(self, signum: signal.Signals) -> None:
        # The child leads its own process group (start_new_session), so signal the group in
        # case it ever forks helpers. Only called while unreaped, so the pgid is still ours.
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signum)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0, ...) and negative pids address whole process groups
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _live_uri(state_path: Path) -> str | None:
    """The URI in the state file, if its pid is alive and its server answers a ping."""
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    pid, uri = (state.get("pid"), state.get("uri")) if isinstance(state, dict) else (None, None)
    if not isinstance(pid, int) or not isinstance(uri, str) or not _pid_alive(pid):
        return None
    return uri if _answers_ping(uri) else None


def _write_state(state_path: Path, server: ServerProcess) -> None:
    # Write then rename, so that a newcomer never reads half a file.
    tmp = state_path.with_name(f"{state_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"pid": server.pid, "port": server.port, "uri": server.uri}))
    os.replace(tmp, state_path)


def _lock_or_live_uri(lock_file: IO[str], state_path: Path) -> str | None:
    """Wait until a live server is advertised (return its URI) or we hold the lock (None)."""
    # Polling rather than a blocking flock: an owner that is still starting its server holds
    # the lock before it writes the state file, and may then hold it for days (favgate serve).
    while True:
        uri = _live_uri(state_path)
        if uri is not None:
            return uri
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            time.sleep(_LOCK_POLL_SECONDS)
            continue
        # Live despite the free lock: its owner died and left it orphaned. WiredTiger would
        # refuse a second server on the directory, so use that one.
        return _live_uri(state_path)


@contextlib.contextmanager
def embedded_database(data_dir: Path) -> Iterator[str]:
    """Yield a MongoDB URI for the embedded database whose data lives in data_dir/"db".

    Reuses a live server that another favgate process started for data_dir, and leaves it
    running; otherwise starts one, advertises it in data_dir/"embedded.json" while holding
    the data_dir/"embedded.lock" flock, and stops it on exit.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    state_path = data_dir / STATE_FILE
    with open(data_dir / LOCK_FILE, "a") as lock_file:
        live_uri = _lock_or_live_uri(lock_file, state_path)
        if live_uri is not None:
            yield live_uri
            return
        server = ServerProcess(data_dir / STORAGE_DIR, log_path=data_dir / LOG_FILE)
        with server:
            _write_state(state_path, server)
            try:
                yield server.uri
            finally:
                # Unadvertise before stopping, so no newcomer picks a dying server; the lock
                # is released only after the server has stopped and freed the directory.
                state_path.unlink(missing_ok=True)
