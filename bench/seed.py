"""The benchmark's data: one account with many tokens, two connected instances, messages.

- instance ``bench`` takes the writes: chat favorites and favorites of its ``MESSAGES``
  messages ``MSG0000``...;
- instance ``pages`` is listed: ``PAGE_FAVORITES`` message favorites, so that a page of 20
  has a next page, and nothing else writes to it.

The account has ``TOKENS`` tokens (the data model allows several per account), used in
turn by the load generator as many clients would: each token's rate-limit window then
holds a share of the traffic, not all of it.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import measure
from pymongo import MongoClient

from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.storage import FavoriteTarget, FavoriteType, InstanceStatus, open_storage

ACCOUNT = "bench"
MESSAGES = 200
PAGE_FAVORITES = 40
CHAT_JID = "5511999999999@s.whatsapp.net"


def seed(uri: str, database: str, tokens: int, tokens_file: Path) -> None:
    issued = [generate_token() for _ in range(tokens)]
    asyncio.run(_seed(Settings().with_uri(uri).replace(database=database), issued[0]))
    client: MongoClient[dict[str, object]] = MongoClient(uri)
    with client:
        hashes = [hash_token(token) for token in issued]
        accounts = client[database]["accounts"]
        accounts.update_one({"name": ACCOUNT}, {"$set": {"token_hashes": hashes}})
    tokens_file.write_text("".join(f"{token}\n" for token in issued))


async def _seed(settings: Settings, token: str) -> None:
    storage = open_storage(settings)
    try:
        await storage.ensure_indexes()
        await storage.directory.reset_account(ACCOUNT, hash_token(token))
        for instance in ["bench", "pages"]:
            await storage.directory.reset_instance(
                instance, ACCOUNT, InstanceStatus.CONNECTED, hash_token(generate_token())
            )
        await storage.messages.upsert_many("bench", _messages("MSG", MESSAGES))
        await storage.messages.upsert_many("pages", _messages("PAGE", PAGE_FAVORITES))
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for i in range(PAGE_FAVORITES):
            target = FavoriteTarget(FavoriteType.MESSAGE, CHAT_JID, f"PAGE{i:04d}")
            await storage.favorites.set("pages", target, True, start + timedelta(minutes=i))
    finally:
        await storage.close()


def _messages(prefix: str, count: int) -> list[dict[str, object]]:
    return [
        {"id": f"{prefix}{i:04d}", "chat_jid": CHAT_JID, "from_me": i % 2 == 0, "text": f"m{i}"}
        for i in range(count)
    ]


def register_persisted(url: str, tokens_file: Path) -> None:
    """Register the persisted workload's document (Apollo's protocol: text and hash), then
    check that its hash alone runs it: a failure there would answer 200 with errors, which
    wrk would count as successes."""
    token = tokens_file.read_text().split()[0]
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": measure.PERSISTED_HASH}}
    variables = {"n": "5500000000001"}
    register = {"query": measure.PERSISTED_QUERY, "variables": variables, "extensions": persisted}
    for body in (register, {"variables": variables, "extensions": persisted}):
        request = urllib.request.Request(
            f"{url}/graphql",
            data=json.dumps(body).encode(),
            headers={"token": token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        if answer.get("errors") or not answer["data"]["setFavorite"]["success"]:
            raise RuntimeError(f"the persisted document did not run: {answer}")


def reset(uri: str, database: str) -> None:
    """A clean slate before each run, the same for favgate and the baseline: empty
    rate-limit windows, so that a token's window holds this run's requests only (not
    every earlier run's of the last minute), and no favorites on ``bench``, so that the
    database does the same work for every run and each message favorite changes one."""
    client: MongoClient[dict[str, object]] = MongoClient(uri)
    with client:
        client[database]["rate_limits"].delete_many({})
        client[database]["favorites"].delete_many({"instance": "bench"})
