"""Accounts, instances and the hashes of their tokens.

Tokens are never stored: only their SHA-256 hashes, looked up by equality on a unique
index. An account token reaches every instance of its account; an instance token reaches
its own instance only (``Caller.can_reach``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from favgate.errors import AccountNotFound, Conflict
from favgate.storage.indexes import ACCOUNTS, INSTANCES
from favgate.storage.records import Caller, Instance, InstanceStatus


class Directory:
    def __init__(self, database: Any) -> None:
        self._accounts = database[ACCOUNTS]
        self._instances = database[INSTANCES]

    async def find_caller(self, token_hash: str) -> Caller | None:
        account = await self._accounts.find_one({"token_hashes": token_hash}, {"name": 1})
        if account is not None:
            return Caller(account=account["name"])
        instance = await self._instances.find_one(
            {"token_hashes": token_hash}, {"name": 1, "account": 1}
        )
        if instance is not None:
            return Caller(account=instance["account"], instance=instance["name"])
        return None

    async def find_instance(self, name: str) -> Instance | None:
        doc = await self._instances.find_one({"name": name}, {"token_hashes": 0})
        return None if doc is None else Instance.from_document(doc)

    async def instances_of(self, account: str) -> list[Instance]:
        """The instances of ``account``, by name, in one query (on the ``account`` index)."""
        cursor = self._instances.find({"account": account}, {"token_hashes": 0}).sort("name", 1)
        return [Instance.from_document(doc) for doc in await cursor.to_list(None)]

    async def create_account(self, name: str, token_hash: str) -> None:
        doc = {"name": name, "token_hashes": [token_hash], "created_at": _now()}
        try:
            await self._accounts.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"Account already exists: {name}") from None

    async def create_instance(
        self, name: str, account: str, status: InstanceStatus, token_hash: str
    ) -> None:
        if await self._accounts.find_one({"name": account}, {"_id": 1}) is None:
            raise AccountNotFound()
        now = _now()
        doc = {
            "name": name,
            "account": account,
            "status": status.value,
            "token_hashes": [token_hash],
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._instances.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"Instance already exists: {name}") from None

    async def set_instance_status(self, name: str, status: InstanceStatus) -> bool:
        """Record what the WhatsApp engine reports; False when there is no such instance."""
        result = await self._instances.update_one(
            {"name": name}, {"$set": {"status": status.value, "updated_at": _now()}}
        )
        return bool(result.matched_count)

    async def reset_account(self, name: str, token_hash: str) -> None:
        """Create the account, or give it ``token_hash`` as its only token."""
        await self._accounts.update_one(
            {"name": name},
            {"$set": {"token_hashes": [token_hash]}, "$setOnInsert": {"created_at": _now()}},
            upsert=True,
        )

    async def reset_instance(
        self, name: str, account: str, status: InstanceStatus, token_hash: str
    ) -> None:
        """Create or overwrite the instance with ``token_hash`` as its only token."""
        now = _now()
        await self._instances.update_one(
            {"name": name},
            {
                "$set": {
                    "account": account,
                    "status": status.value,
                    "token_hashes": [token_hash],
                    "updated_at": now,
                },
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
        )


def _now() -> datetime:
    return datetime.now(UTC)
