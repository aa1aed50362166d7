"""The MongoDB driver, chosen by configuration.

motor reached end of life in May 2026 and PyMongo's ``AsyncMongoClient`` succeeds it. Both
expose the same asyncio collection API for everything favgate uses (``find_one``, ``find``
cursors with ``to_list``, ``update_one``, ``bulk_write``, ``count_documents``,
``create_index``), so the choice is made here, once, and nothing above this module knows
which one runs. The only difference that leaks is ``close()``: synchronous in motor,
a coroutine in PyMongo.

**Deadlines.** Every operation runs under the client's ``timeoutMS`` (PyMongo's
client-side operation timeout): server selection, checking out or opening a connection,
retries and the wait for the reply all share one deadline, and the server is told what is
left of it (``maxTimeMS``). The connect and server-selection timeouts alone bound only a
database that is gone: one whose process is stopped keeps its sockets open and its
kernel keeps accepting connections, so without a deadline an operation waits for its
reply as long as the stall lasts. A blown deadline raises an error whose ``timeout`` is
true (``NetworkTimeout``, ``ExecutionTimeout``, ``ServerSelectionTimeoutError``...),
which ``favgate.errors.public_error`` makes a 503. motor runs PyMongo's synchronous
client, which applies the same option to each operation it runs in its threads; its
deadline starts when a thread is free (five per core), so while a stalled database holds
them all, an operation queued behind them waits longer (``Storage.ping`` sets its own,
which starts at the call: motor hands the caller's context to the thread). Change
streams take one deadline per wait for a batch, not for their whole life (see
``favgate.storage.changes``).
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
        # Bound every wait on a stalled, slow or unreachable server (see the docstring),
        # so requests fail with a 503 instead of waiting as long as the database does.
        "timeoutMS": timeout_ms,
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "appname": "favgate",
    }
    if driver == "motor":
        from motor.motor_asyncio import AsyncIOMotorClient

        return AsyncIOMotorClient(uri, **options)
    return AsyncMongoClient(uri, **options)


def deadline_ms(database: Any) -> int | None:
    """The per-operation deadline of ``database``'s client, in ms (None: it has none)."""
    seconds: float | None = database.client.options.timeout
    return None if seconds is None else round(seconds * 1000)


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
