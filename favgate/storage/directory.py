"""Accounts, instances and the hashes of their tokens.

Tokens are never stored: only their SHA-256 hashes, looked up by equality on a unique
index. An account token reaches every instance of its account; an instance token reaches
its own instance only (``Caller.can_reach``). An owner may hold several tokens (rotation:
add the new one, move the clients, revoke the old one).

The unique index counts an empty list of hashes as a value, so two owners without tokens
would collide: an owner whose every token is revoked holds ``NO_TOKEN + name`` instead,
which no SHA-256 hex digest equals, and which is unique since names are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from favgate.errors import AccountNotFound, Conflict, FavgateError
from favgate.storage.indexes import ACCOUNTS, FAVORITES, INSTANCES
from favgate.storage.records import Caller, Instance, InstanceStatus

NO_TOKEN = "no-token:"
# Who holds tokens: an account or an instance, each in its own collection.
Owner = Literal["account", "instance"]


@dataclass(frozen=True, slots=True)
class Listed:
    """An account or instance as ``favgate account list`` shows it: never a hash."""

    name: str
    tokens: int
    created: datetime | None
    account: str | None = None
    status: str | None = None


class Directory:
    def __init__(self, database: Any) -> None:
        self._accounts = database[ACCOUNTS]
        self._instances = database[INSTANCES]
        self._favorites = database[FAVORITES]

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

    async def token_in_use(self, token_hash: str) -> bool:
        """Whether an account or an instance holds ``token_hash`` already."""
        query = {"token_hashes": token_hash}
        for owners in (self._accounts, self._instances):
            if await owners.find_one(query, {"_id": 1}) is not None:
                return True
        return False

    async def add_token(self, owner: Owner, name: str, token_hash: str) -> bool:
        """Give ``name`` one more token; False when there is no such owner."""
        kept = _without("$token_hashes", [token_hash, NO_TOKEN + name])
        update = [{"$set": {"token_hashes": {"$concatArrays": [kept, [token_hash]]}}}]
        result = await self._owners(owner).update_one({"name": name}, update)
        return bool(result.matched_count)

    async def revoke_token(self, owner: Owner, name: str, token_hash: str) -> bool:
        """Take ``token_hash`` from ``name``; False when it does not hold it."""
        left = _without("$token_hashes", [token_hash])
        hashes = {"$cond": [{"$eq": [{"$size": left}, 0]}, [NO_TOKEN + name], left]}
        query = {"name": name, "token_hashes": token_hash}
        result = await self._owners(owner).update_one(query, [{"$set": {"token_hashes": hashes}}])
        return bool(result.matched_count)

    async def revoke_all(self, owner: Owner, name: str) -> int | None:
        """Take every token from ``name``: how many it held; None when there is no such owner."""
        before = await self._owners(owner).find_one_and_update(
            {"name": name},
            {"$set": {"token_hashes": [NO_TOKEN + name]}},
            projection={"_id": 0, "token_hashes": 1},
            return_document=ReturnDocument.BEFORE,
        )
        return None if before is None else _count(before)

    async def list_accounts(self) -> list[Listed]:
        docs = await self._accounts.find({}, {"_id": 0}).sort("name").to_list(None)
        return [Listed(doc["name"], _count(doc), doc.get("created_at")) for doc in docs]

    async def list_instances(self, account: str | None = None) -> list[Listed]:
        query = {} if account is None else {"account": account}
        docs = await self._instances.find(query, {"_id": 0}).sort("name").to_list(None)
        return [
            Listed(doc["name"], _count(doc), doc.get("created_at"), doc["account"], doc["status"])
            for doc in docs
        ]

    async def delete_instance(self, name: str, purge: bool = False) -> int | None:
        """Delete the instance, and with ``purge`` its favorite records: how many; None
        when there is no such instance. Without ``purge``, refused while it has some."""
        if await self._instances.find_one({"name": name}, {"_id": 1}) is None:
            return None
        favorites = {"instance": name}
        if not purge and await self._favorites.find_one(favorites, {"_id": 1}) is not None:
            count = await self._favorites.count_documents(favorites)
            raise FavgateError(
                f"Instance {name} has {count} favorite records; --purge deletes them with it"
            )
        # The instance first: once it is gone no request can add a favorite to purge.
        await self._instances.delete_one({"name": name})
        return int((await self._favorites.delete_many(favorites)).deleted_count)

    def _owners(self, owner: Owner) -> Any:
        return self._accounts if owner == "account" else self._instances

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


def _without(array: str, values: list[str]) -> dict[str, Any]:
    return {"$filter": {"input": array, "cond": {"$not": [{"$in": ["$$this", values]}]}}}


def _count(doc: dict[str, Any]) -> int:
    """How many real tokens ``doc`` holds (not the placeholder of an owner without any)."""
    return sum(not hash.startswith(NO_TOKEN) for hash in doc.get("token_hashes", []))
