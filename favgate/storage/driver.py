"""The MongoDB driver, chosen by configuration.

motor reached end of life in May 2026 and PyMongo's ``AsyncMongoClient`` succeeds it. Both
expose the same asyncio collection API for everything favgate uses (``find_one``, ``find``
cursors with ``to_list``, ``update_one``, ``bulk_write``, ``count_documents``,
``create_index``), so the choice is made here, once, and nothing above this module knows
which one runs. The only difference that leaks is ``close()``: synchronous in motor,
a coroutine in PyMongo.
"""

from __future__ import annotations

import inspect
from typing import Any

from pymongo import AsyncMongoClient

from favgate.config import Driver

# The client type is the driver's own; both share the subset favgate calls.
Client = Any


def connect(uri: str, driver: Driver, timeout_ms: int) -> Client:
    """A client for ``uri``. It connects lazily, so this never blocks or fails on I/O."""
    options: dict[str, Any] = {
        "tz_aware": True,
        # Bound every wait on an unreachable server, so requests fail with a 503 in
        # seconds instead of hanging for the driver's 30 s default.
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "appname": "favgate",
    }
    if driver == "motor":
        from motor.motor_asyncio import AsyncIOMotorClient

        return AsyncIOMotorClient(uri, **options)
    return AsyncMongoClient(uri, **options)


async def close(client: Client) -> None:
    result = client.close()
    if inspect.isawaitable(result):
        await result


async def aggregate(collection: Any, pipeline: list[dict[str, Any]], length: int) -> list[Any]:
    """Up to ``length`` documents of ``pipeline`` run on ``collection``: PyMongo's
    ``aggregate`` is a coroutine that gives the cursor, motor's gives it at once."""
    cursor = collection.aggregate(pipeline)
    if inspect.isawaitable(cursor):
        cursor = await cursor
    return list(await cursor.to_list(length))
