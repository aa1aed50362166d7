"""Python calls per request, favgate beside the baseline: CPU's deterministic shadow.

    python bench/calls.py [--workloads chat,set] [--requests 320] [--driver pymongo]

CPU time per request moves by a quarter between runs on a shared machine (the baseline's
own figure for one and the same request does, bench/RESULTS.md), so a change of a few
percent cannot be told from it. The number of Python function calls a request makes
(``sys.setprofile``: every call and every resumption of a coroutine, C functions
included) does not move, and follows CPU time closely enough to say which change helps
and what a request pays for.

Each app is served in this process, straight through ASGI (no HTTP server, no wrk: the
same for both), on a SecantusDB of its own seeded as for ``make bench``; 16 requests at a
time, as the budgets' load. The requests are wrk.lua's, the webhook worker off (its
loops are not the request's). Prints, per workload, the calls per request of each app,
their ratio, and favgate's own functions that the request calls most.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import measure
import seed

from favgate.embedded import ServerProcess

DATABASE = "favgate_bench"
CONCURRENCY = 16
PAGE = (
    'query { favorites(instance: "pages", first: 20) { '
    "edges { node { id chatJid messageId favoritedAt message { id text fromMe } } } "
    "pageInfo { hasNextPage endCursor } } }"
)
WORKLOADS = ("chat", "message", "set", "persisted", "page")

App = Callable[..., Awaitable[None]]


def request(kind: str, workload: str, n: int) -> tuple[str, dict[str, Any]]:
    """Path and body of request ``n``, as bench/wrk.lua makes them."""
    number = f"55999{n:09d}"
    favorite = {"number": number, "favorite": True}
    message = {"messageId": f"MSG{n % seed.MESSAGES:04d}", "favorite": n // seed.MESSAGES % 2 == 0}
    if kind == "baseline":
        paths = {"message": "/message/bench", "page": "/page/pages"}
        bodies = {"message": message, "page": {}}
        return paths.get(workload, "/chat/bench"), bodies.get(workload, favorite)
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": measure.PERSISTED_HASH}}
    return {
        "chat": ("/api/chat/favorite/bench", favorite),
        "message": ("/api/chat/favorite/bench", message),
        "set": ("/graphql", {"query": measure.PERSISTED_QUERY, "variables": {"n": number}}),
        "persisted": ("/graphql", {"extensions": persisted, "variables": {"n": number}}),
        "page": ("/graphql", {"query": PAGE}),
    }[workload]


async def call(app: App, state: dict[str, Any], path: str, body: dict[str, Any], token: str) -> int:
    """One POST through the ASGI app; its status."""
    raw = json.dumps(body).encode()
    headers = [(b"token", token.encode()), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(raw)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": dict(state),
    }
    messages = [{"type": "http.request", "body": raw, "more_body": False}]
    statuses = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


@asynccontextmanager
async def serving(kind: str, uri: str) -> Any:
    """``kind``'s app in its lifespan; yields (app, lifespan state)."""
    os.environ.update(
        MONGODB_URI=uri,
        BENCH_DATABASE=DATABASE,
        FAVGATE_ENV="production",
        FAVGATE_LOG_LEVEL="warning",
        FAVGATE_RATE_LIMIT="1000000000",
        FAVGATE_WEBHOOK_WORKER="false",
    )
    if kind == "baseline":
        import baseline

        app = baseline.create_app()
    else:
        from favgate.app import create_app

        app = create_app()
    async with app.router.lifespan_context(app) as state:
        yield app, dict(state or {})


async def calls_per_request(kind: str, workload: str, requests: int) -> Counter[tuple[str, str]]:
    """Calls by (file, function) per request of ``workload`` on ``kind``, warmed up."""
    with ServerProcess(":memory:") as database, tempfile.TemporaryDirectory() as scratch:
        uri = database.uri.replace("/?", f"/{DATABASE}?", 1)
        tokens_file = Path(scratch) / "tokens.txt"
        await asyncio.to_thread(seed.seed, uri, DATABASE, 8, tokens_file)
        tokens = tokens_file.read_text().split()
        async with serving(kind, uri) as (app, state):
            if workload == "persisted" and kind != "baseline":
                register = {"query": measure.PERSISTED_QUERY, "variables": {"n": "5500000000001"}}
                register["extensions"] = request(kind, workload, 0)[1]["extensions"]
                assert await call(app, state, "/graphql", register, tokens[0]) == 200
            await load(app, state, kind, workload, tokens, 0, 4 * CONCURRENCY)  # caches, leases
            counted: Counter[tuple[str, str]] = Counter()
            sys.setprofile(_counting(counted))
            try:
                await load(app, state, kind, workload, tokens, 10_000, requests)
            finally:
                sys.setprofile(None)
    return Counter({key: count / requests for key, count in counted.items()})


async def load(
    app: App, state: dict[str, Any], kind: str, workload: str, tokens: list[str], first: int, n: int
) -> None:
    async def client(offset: int) -> None:
        for i in range(offset, n, CONCURRENCY):
            path, body = request(kind, workload, first + i)
            status = await call(app, state, path, body, tokens[i % len(tokens)])
            assert status == 200, f"{kind} answered {status} to {path}"

    await asyncio.gather(*(client(offset) for offset in range(CONCURRENCY)))


def _counting(counted: Counter[tuple[str, str]]) -> Callable[..., None]:
    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            counted[(frame.f_code.co_filename, frame.f_code.co_name)] += 1
        elif event == "c_call":
            counted[("C", getattr(arg, "__qualname__", "?"))] += 1

    return profile


def report(
    workload: str, favgate: Counter[tuple[str, str]], baseline: Counter[tuple[str, str]]
) -> str:
    ours, theirs = sum(favgate.values()), sum(baseline.values())
    own = Counter({k: v for k, v in favgate.items() if "/favgate/" in k[0]})
    top = ", ".join(
        f"{Path(file).stem}.{name} {count:.1f}" for (file, name), count in own.most_common(8)
    )
    return (
        f"{workload:>9}: favgate {ours:,.0f} · baseline {theirs:,.0f} calls/request "
        f"({ours / theirs:.2f}x); favgate's most called: {top}"
    )


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--requests", type=int, default=20 * CONCURRENCY)
    parser.add_argument("--driver", choices=["motor", "pymongo"], default="pymongo")
    args = parser.parse_args(argv)
    os.environ["FAVGATE_MONGO_DRIVER"] = args.driver
    for workload in args.workloads.split(","):
        favgate = await calls_per_request("favgate", workload, args.requests)
        baseline = await calls_per_request("baseline", workload, args.requests)
        print(report(workload, favgate, baseline), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
