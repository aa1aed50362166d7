"""Live fan-out: one change, thousands of subscribers, on one gateway process.

A gateway (bench/serve.py, on the servers' CPU) on a SecantusDB of its own, seeded as the
other workloads' (bench/seed.py). ``--connections`` WebSockets each open
``--per-connection`` ``favoriteChanged`` subscriptions on instance ``bench`` (the
per-token cap raised for the run), the same document for all, as one client application's
users would send. Then ``--writes`` REST favorites on that instance, one at a time: for
each, the time from the write's answer to the last of its subscribers' ``next``
messages (the fan-out), and the write's own time. Meanwhile a separate process asks
``/healthz`` every 10 ms (``--probe``) and reports its slowest answer: how long a change
holds the event loop. RSS is read before the subscriptions are opened (connections
acknowledged) and after: its growth per 1,000 subscriptions.

    python bench/fanout.py [--drivers motor,pymongo] [--connections 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import measure
import sampling
import seed
from websockets.asyncio.client import ClientConnection, connect

from favgate.embedded import ServerProcess

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DATABASE = "favgate_bench"
SUBSCRIPTION = (
    'subscription { favoriteChanged(instance: "bench") '
    "{ id chatJid messageId favorite type favoritedAt } }"
)
PROBE_EVERY = 0.01
# A write whose fan-out takes longer is reported as this (and the run goes on).
DELIVERY_TIMEOUT = 10.0


class Subscribers:
    """Counts the ``next`` messages of the write under way, and when the last came."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.first = self.last = 0.0
        self.done = asyncio.Event()

    def start(self) -> None:
        self.received, self.first, self.last = 0, 0.0, 0.0
        self.done.clear()

    def receive(self, text: str | bytes) -> None:
        if '"next"' in str(text):
            self.received += 1
            self.last = time.perf_counter()
            if self.received == 1:
                self.first = self.last
            if self.received >= self.expected:
                self.done.set()


async def open_connection(
    stack: AsyncExitStack, url: str, token: str, subscriptions: int
) -> ClientConnection:
    websocket = await stack.enter_async_context(
        connect(url, subprotocols=["graphql-transport-ws"], max_queue=None)  # type: ignore[list-item]
    )
    await websocket.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
    ack = json.loads(await websocket.recv())
    if ack.get("type") != "connection_ack":
        raise RuntimeError(f"not acknowledged: {ack}")
    return websocket


async def subscribe(websocket: ClientConnection, subscriptions: int) -> None:
    for n in range(subscriptions):
        message = {"id": str(n + 1), "type": "subscribe", "payload": {"query": SUBSCRIPTION}}
        await websocket.send(json.dumps(message))


async def read(websocket: ClientConnection, subscribers: Subscribers) -> None:
    async for message in websocket:
        subscribers.receive(message)


async def write(http: httpx.AsyncClient, token: str, n: int) -> float:
    """One REST favorite of a new chat; when its answer came."""
    response = await http.post(
        "/api/chat/favorite/bench",
        json={"number": f"5577{n:09d}", "favorite": True},
        headers={"token": token},
    )
    response.raise_for_status()
    return time.perf_counter()


async def fan_out(
    server: measure.Server, tokens: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    total = args.connections * args.per_connection
    subscribers = Subscribers(total)
    url = server.url.replace("http://", "ws://") + "/graphql"
    async with AsyncExitStack() as stack, httpx.AsyncClient(base_url=server.url) as http:
        sockets = [
            await open_connection(stack, url, tokens[i % len(tokens)], args.per_connection)
            for i in range(args.connections)
        ]
        rss_connected = measure.memory_mb(server.pid, "VmRSS")
        readers = [asyncio.create_task(read(ws, subscribers)) for ws in sockets]
        for websocket in sockets:
            await subscribe(websocket, args.per_connection)
        await until_every_one_hears(http, tokens[0], subscribers)
        rss_subscribed = measure.memory_mb(server.pid, "VmRSS")
        probe = start_probe(server.url, args)
        with profiling(server.pid, args) as profile:
            timings = await timed_writes(http, tokens[0], subscribers, args.writes, server.pid)
        slowest_health = finish_probe(probe)
        for task in readers:
            task.cancel()
    return {
        "subscriptions": total,
        "connections": args.connections,
        "writes": args.writes,
        **timings.summary(),
        "healthz": slowest_health,
        "rss_connected_mb": rss_connected,
        "rss_subscribed_mb": rss_subscribed,
        "rss_per_1000_subscriptions_mb": (rss_subscribed - rss_connected) * 1000 / total,
        **profile,
    }


async def until_every_one_hears(
    http: httpx.AsyncClient, token: str, subscribers: Subscribers
) -> None:
    """Writes until one reaches every subscription: all of them are then listening."""
    for n in range(50):
        subscribers.start()
        await write(http, token, 900_000_000 + n)
        try:
            await asyncio.wait_for(subscribers.done.wait(), 2)
            return
        except TimeoutError:
            continue
    raise RuntimeError(f"only {subscribers.received} of {subscribers.expected} subscribed")


class Timings:
    """Per write: the fan-out (answer to last ``next``), the first ``next`` (mostly the
    change stream's own delay), the write itself, and the CPU the gateway and this client
    spent from the write's start to the last ``next``."""

    def __init__(self) -> None:
        self.fan_out: list[float] = []
        self.first: list[float] = []
        self.write: list[float] = []
        self.gateway_cpu: list[float] = []
        self.client_cpu: list[float] = []

    def summary(self) -> dict[str, Any]:
        return {
            "fan_out_ms": self.fan_out,
            "fan_out_p50_ms": statistics.median(self.fan_out),
            "fan_out_max_ms": max(self.fan_out),
            "first_next_p50_ms": statistics.median(self.first),
            "write_p50_ms": statistics.median(self.write),
            "write_max_ms": max(self.write),
            "gateway_cpu_p50_ms": statistics.median(self.gateway_cpu),
            "client_cpu_p50_ms": statistics.median(self.client_cpu),
        }


def _ms(seconds: float) -> float:
    return round(max(0.0, seconds) * 1000, 1)


async def timed_writes(
    http: httpx.AsyncClient, token: str, subscribers: Subscribers, count: int, pid: int
) -> Timings:
    timings = Timings()
    for n in range(count):
        await asyncio.sleep(0.2)
        subscribers.start()
        gateway, client = measure.cpu_seconds(pid), time.process_time()
        started = time.perf_counter()
        answered = await write(http, token, n)
        try:
            await asyncio.wait_for(subscribers.done.wait(), DELIVERY_TIMEOUT)
            first, last = subscribers.first, subscribers.last
        except TimeoutError:
            first = last = answered + DELIVERY_TIMEOUT
        timings.gateway_cpu.append(_ms(measure.cpu_seconds(pid) - gateway))
        timings.client_cpu.append(_ms(time.process_time() - client))
        timings.fan_out.append(_ms(last - answered))
        timings.first.append(_ms(first - answered))
        timings.write.append(_ms(answered - started))
    return timings


@contextlib.contextmanager
def profiling(pid: int, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """With ``--fanout-profile``: py-spy samples of the gateway during the writes, their
    summary left in the dict yielded (as ``profile``)."""
    found: dict[str, Any] = {}
    if not args.fanout_profile:
        yield found
        return
    raw = RESULTS / "profile-fanout.txt"
    with sampling.recording(pid, args.fanout_profile_seconds, raw):
        yield found
    found["profile"] = sampling.summary(raw)


def start_probe(url: str, args: argparse.Namespace) -> subprocess.Popen[str]:
    command = [sys.executable, str(BENCH / "fanout.py"), "--probe", url]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def finish_probe(probe: subprocess.Popen[str]) -> dict[str, Any]:
    output, _ = probe.communicate("stop\n", timeout=30)
    result: dict[str, Any] = json.loads(output)
    return result


def probe(url: str) -> None:
    """``/healthz`` every ``PROBE_EVERY`` s until stdin closes or says stop; prints JSON."""
    import threading

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    times = []
    while not stop.is_set():
        started = time.perf_counter()
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(PROBE_EVERY)
    times.sort()
    print(
        json.dumps(
            {
                "requests": len(times),
                "p50_ms": round(statistics.median(times), 1),
                "p99_ms": round(times[int(len(times) * 0.99)], 1),
                "max_ms": round(times[-1], 1),
            }
        )
    )


def run(driver: str, args: argparse.Namespace) -> dict[str, Any]:
    """The fan-out on a fresh database and gateway, with ``driver``."""
    RESULTS.mkdir(exist_ok=True)
    with ServerProcess(":memory:", log_path=RESULTS / "secantusd-fanout.log") as database:
        uri = database.uri.replace("/?", f"/{DATABASE}?", 1)
        tokens_file = RESULTS / "tokens-fanout.txt"
        seed.seed(uri, DATABASE, 8, tokens_file)
        env = {
            **os.environ,
            "MONGODB_URI": uri,
            "BENCH_DATABASE": DATABASE,
            "BENCH_TOKENS": str(tokens_file),
            "FAVGATE_MONGO_DRIVER": driver,
            "FAVGATE_ENV": "production",
            "FAVGATE_LOG_LEVEL": "warning",
            "FAVGATE_RATE_LIMIT": str(10**9),
            # Raised for the run: one token's clients hold them all.
            "FAVGATE_MAX_SUBSCRIPTIONS_PER_TOKEN": str(10**6),
        }
        server = measure.Server("favgate", free_port(), env, RESULTS / "favgate-fanout.log")
        try:
            tokens = tokens_file.read_text().split()
            return asyncio.run(fan_out(server, tokens, args))
        finally:
            server.stop()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--per-connection", type=int, default=10)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--fanout-profile", action="store_true", help="py-spy, the writes'")
    parser.add_argument("--fanout-profile-seconds", type=int, default=10)


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        probe(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options(parser)
    parser.add_argument("--drivers", default="motor,pymongo")
    args = parser.parse_args()
    os.sched_setaffinity(0, measure.OTHER_CPUS)
    for driver in args.drivers.split(","):
        result = run(driver, args)
        print(json.dumps({driver: result}), flush=True)


if __name__ == "__main__":
    main()
