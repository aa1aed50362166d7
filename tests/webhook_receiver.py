"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1, in a thread of its
own (so gateways in this process and in others reach it alike), recording every request
and answering from a script of statuses (then 200)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

TIMEOUT = 20.0  # seconds for anything that should happen: a failure, never a wait


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> Any:
        """The body, once its signature is verified as any receiver would."""
        return Webhook(secret).verify(self.body, self.headers)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, statuses: tuple[int, ...] = (), port: int = 0) -> None:
        self.statuses = list(statuses)
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    receiver.received.append(Received(self.path, headers, body, status))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", "/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads ``received``, not a log

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/favgate"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    async def wait_for(
        self, condition: Callable[[list[Received]], bool], timeout: float = TIMEOUT
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while not condition(received := self.snapshot()):
            ids = [r.id for r in received]
            assert time.monotonic() < deadline, f"not received in {timeout:g} s; got {ids}"
            await asyncio.sleep(0.02)
        return received

    async def wait_for_count(self, count: int) -> list[Received]:
        return await self.wait_for(lambda received: len(received) >= count)


def distinct_ids(received: list[Received]) -> Iterator[str]:
    return iter(dict.fromkeys(r.id for r in received))
