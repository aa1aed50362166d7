"""Persisted GraphQL documents, by tenant and the SHA-256 of their text (automatic persisted
queries): ``_id`` is ``<account>:<sha256>``.

Every replica registers and finds documents here, so a hash registered through one
gateway runs on all of them. A document is written once and never changes: its key is
its own hash. A TTL index removes each a day after it was registered, so that what
clients register cannot pile up (they register a document again when it is gone).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from favgate.storage.indexes import DOCUMENTS


class Documents:
    def __init__(self, database: Any) -> None:
        self._documents = database[DOCUMENTS]

    async def get(self, key: str) -> str | None:
        doc = await self._documents.find_one({"_id": key}, {"_id": 0, "text": 1})
        return None if doc is None else str(doc["text"])

    async def put(self, key: str, text: str) -> None:
        """Register ``text`` under ``key`` (the caller has checked its hash)."""
        # A DuplicateKeyError: registered concurrently by another request.
        with contextlib.suppress(DuplicateKeyError):
            await self._documents.update_one(
                {"_id": key},
                {"$setOnInsert": {"text": text, "registered_at": datetime.now(UTC)}},
                upsert=True,
            )
