"""What open subscriptions cost the requests: REST favorite latency with N subscribers.

Starts an embedded database and a gateway (uvicorn, in this process), opens N
``favoriteChanged`` subscriptions on the instance that is written to (so each write is
delivered N times), then times sequential REST favorites. Run for each driver::

    python bench/subscriptions.py [--subscriptions 0 10 50] [--requests 200]

The figures are relative (client and gateway share one process and event loop): compare
rows, not absolute values with other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from contextlib import AsyncExitStack

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from favgate.app import create_app
from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.embedded import ServerProcess
from favgate.metrics import REGISTRY
from favgate.storage import InstanceStatus, open_storage

OPEN = "favgate_graphql_subscriptions_open"
SUBSCRIPTION = 'subscription { favoriteChanged(instance: "main") { chatJid favorite } }'


async def seed(settings: Settings) -> str:
    storage = open_storage(settings)
    try:
        await storage.ensure_indexes()
        token = generate_token()
        await storage.directory.create_account("acme", hash_token(token))
        await storage.directory.create_instance(
            "main", "acme", InstanceStatus.CONNECTED, hash_token(generate_token())
        )
    finally:
        await storage.close()
    return token


async def subscribe(stack: AsyncExitStack, address: str, token: str) -> ClientConnection:
    websocket = await stack.enter_async_context(
        connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    )
    await websocket.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
    await websocket.recv()
    payload = {"query": SUBSCRIPTION}
    await websocket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    return websocket


async def drain(websocket: ClientConnection) -> None:
    async for _ in websocket:
        pass


async def measure(uri: str, driver: str, subscriptions: int, requests: int) -> list[float]:
    # One token holds every subscription: no cap or budget of its may stop the bench.
    settings = Settings(
        mongo_driver=driver,  # type: ignore[arg-type]
        rate_limit=10**9,
        max_subscriptions_per_token=10**6,
    ).with_uri(uri)
    settings = settings.replace(database=f"bench_{uuid.uuid4().hex[:8]}")
    token = await seed(settings)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    address = f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    async with AsyncExitStack() as stack:
        sockets = [await subscribe(stack, address, token) for _ in range(subscriptions)]
        drains = [asyncio.create_task(drain(websocket)) for websocket in sockets]
        while (REGISTRY.get_sample_value(OPEN) or 0) < subscriptions:  # every one started
            await asyncio.sleep(0.01)
        latencies = []
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            for i in range(requests):
                started = time.perf_counter()
                response = await http.post(
                    "/api/chat/favorite/main",
                    json={"number": f"55119{i:08d}", "favorite": True},
                    headers={"token": token},
                )
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
        for task in drains:
            task.cancel()
    server.should_exit = True
    await serving
    return sorted(latencies)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, nargs="+", default=[0, 10, 50])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with ServerProcess(":memory:") as database:
        for driver in ("motor", "pymongo"):
            for count in args.subscriptions:
                ms = await measure(database.uri, driver, count, args.requests)
                p50, p95 = statistics.median(ms), ms[int(len(ms) * 0.95)]
                print(f"{driver:8} subscriptions={count:4} p50={p50:6.1f} ms p95={p95:6.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
