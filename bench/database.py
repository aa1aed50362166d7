"""What the embedded database (SecantusDB) does alone: the bound on favgate's throughput.

On a fresh SecantusDB, with PyMongo's synchronous client and nothing else running:

- sequential upserts a second: favgate's write (bench/baseline.py ``upsert``), one at a
  time, each a new chat;
- a sorted page: 20 favorites among ``FAVORITES`` of one instance, newest first, as
  ``favorites(first: 20)`` asks for them (bench/baseline.py ``page``), timed ``PAGES``
  times, the median.

These are the figures the README quotes: the embedded default is for development and
trials; production is sized on MongoDB.

    python bench/database.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient, WriteConcern

from favgate.embedded import ServerProcess
from favgate.storage.indexes import FAVORITES as FAVORITES_COLLECTION
from favgate.storage.indexes import INDEXES

DATABASE = "favgate_bench_database"
UPSERTS = 300
FAVORITES = 5000
PAGES = 5
NEWEST_FIRST = [("favorited_at", -1), ("_id", -1)]


def figures(results: Path) -> dict[str, Any]:
    with ServerProcess(":memory:", log_path=results / "secantusd-database.log") as server:
        client: MongoClient[dict[str, Any]] = MongoClient(server.uri, tz_aware=True)
        with client:
            favorites = client[DATABASE].get_collection(
                FAVORITES_COLLECTION, write_concern=WriteConcern(w=1, j=True)
            )
            favorites.create_indexes(INDEXES[FAVORITES_COLLECTION])  # favgate's own
            return {
                "sequential_upserts_per_second": upserts_per_second(favorites),
                "favorites": FAVORITES,
                "pages": PAGES,
                "page_ms": page_ms(favorites),
            }


def upserts_per_second(favorites: Any) -> float:
    started = time.perf_counter()
    for n in range(UPSERTS):
        key = {"instance": "upserts", "type": "chat", "message_id": None}
        key["chat_jid"] = f"55{n:011d}@s.whatsapp.net"
        now = datetime.now(UTC)
        state = {"favorite": True, "updated_at": now, "favorited_at": now}
        favorites.update_one(key, [{"$set": state}], upsert=True)
    return UPSERTS / (time.perf_counter() - started)


def page_ms(favorites: Any) -> float:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    favorites.insert_many(
        {
            "instance": "pages",
            "type": "message",
            "chat_jid": "5511999999999@s.whatsapp.net",
            "message_id": f"PAGE{i:05d}",
            "favorite": True,
            "favorited_at": start + timedelta(seconds=i),
            "updated_at": start + timedelta(seconds=i),
        }
        for i in range(FAVORITES)
    )
    times = []
    for _ in range(PAGES):
        started = time.perf_counter()
        cursor = favorites.find({"instance": "pages", "favorite": True})
        page = list(cursor.sort(NEWEST_FIRST).limit(21))
        times.append((time.perf_counter() - started) * 1000)
        assert len(page) == 21
    return statistics.median(times)


if __name__ == "__main__":
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    json.dump(figures(results), sys.stdout, indent=2)
    print()
