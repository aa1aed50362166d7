"""Serve favgate or the baseline for the benchmark, counting database round trips.

    python bench/serve.py favgate|favgate-nolimit|baseline PORT

Runs uvicorn as ``favgate serve`` does in production (uvloop, httptools, one worker,
access log off). Before the app opens its database client, a PyMongo command listener is
registered that counts every command sent to the benchmark's database, by command and
collection; the counts are served on ``GET /__bench__/commands``, a route this wrapper
adds in front of the app. Nothing of this is in favgate's own app.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from typing import Any

import uvicorn
from pymongo import monitoring

from favgate.config import Settings
from favgate.wsprotocol import websocket_options

COUNTER_PATH = "/__bench__/commands"


class CommandCounter(monitoring.CommandListener):
    """Commands started against one database. motor runs PyMongo in threads: locked."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.counts: Counter[str] = Counter()  # by "command collection"
        self.lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database:
            name = f"{event.command_name} {event.command.get(event.command_name)}"
            with self.lock:
                self.counts[name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class WithCounter:
    """The app, plus the counters' route in front of it (pure ASGI). It counts the
    requests the app served, and those in flight, so that the harness reads the counters
    once the server is done with every request it was sent: wrk stops with some still
    in flight, which it does not count."""

    def __init__(self, app: Any, counter: CommandCounter) -> None:
        self.app = app
        self.counter = counter
        self.requests = 0
        self.active = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] == COUNTER_PATH:
            await self.counters(send)
        else:
            self.requests += 1
            self.active += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.active -= 1

    async def counters(self, send: Any) -> None:
        with self.counter.lock:
            commands = dict(self.counter.counts)
        state = {"commands": commands, "requests": self.requests, "active": self.active}
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(state).encode()})


def build(kind: str) -> Any:
    if kind == "baseline":
        import baseline

        return baseline.create_app()
    from favgate.app import create_app
    from favgate.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level)  # as favgate serve does
    app = create_app(settings)
    if kind == "favgate-nolimit":
        # A diagnosis, never a deployment: the same app with a limiter that admits
        # everything without asking the database, to tell the limiter's cost apart.
        return WithFreeLimiter(app)
    return app


class WithFreeLimiter:
    """Hands requests a limiter that grants every charge on the spot."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        state = scope.get("state")
        if state is not None and "limiter" in state:
            state["limiter"] = FreeLimiter(state["limiter"].policy)
        await self.app(scope, receive, send)


class FreeLimiter:
    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def spent(self, key: str) -> Any:
        return None

    async def acquire(self, key: str, cost: int = 1) -> Any:
        from favgate.ratelimit.limiter import Decision

        limit = self.policy.limit
        return Decision(True, limit, limit - cost, 0, None, self.policy.window)


def main(kind: str, port: int) -> None:
    counter = CommandCounter(os.environ.get("BENCH_DATABASE", "favgate"))
    monitoring.register(counter)
    config = uvicorn.Config(
        WithCounter(build(kind), counter),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
        # The WebSocket as favgate serve runs it (favgate.cli): bench/fanout.py uses it.
        **websocket_options(Settings.from_env()),
        log_config=None if kind.startswith("favgate") else uvicorn.config.LOGGING_CONFIG,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
