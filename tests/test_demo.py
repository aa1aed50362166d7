"""Demo seeding against a real database: idempotent, and each run issues fresh tokens."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pymongo import MongoClient

from favgate import demo
from favgate.auth import Access
from favgate.config import Settings
from favgate.errors import InvalidToken
from favgate.storage import Caller, InstanceStatus, Storage


def counts(settings: Settings) -> dict[str, int]:
    """Documents per collection, read with a separate synchronous client."""
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri)
    with client:
        database = client[settings.database]
        return {
            name: database[name].count_documents({})
            for name in ["accounts", "instances", "messages"]
        }


async def test_seed_twice_is_idempotent_and_rotates_tokens(
    storage: Storage, settings: Settings
) -> None:
    first = await demo.seed(storage)
    await storage.directory.set_instance_status(demo.INSTANCE, InstanceStatus.DISCONNECTED)
    second = await demo.seed(storage)

    assert counts(settings) == {"accounts": 1, "instances": 1, "messages": 3}
    instance = await storage.directory.find_instance(demo.INSTANCE)
    assert instance is not None
    assert (instance.account, instance.status) == (demo.ACCOUNT, InstanceStatus.CONNECTED)

    assert await Access(storage, second.account).caller() == Caller(account=demo.ACCOUNT)
    assert await Access(storage, second.instance).instance(demo.INSTANCE) == instance
    assert await Access(storage, second.account).instance(demo.INSTANCE) == instance
    for stale in [first.account, first.instance]:
        with pytest.raises(InvalidToken):
            await Access(storage, stale).caller()
    assert len({first.account, first.instance, second.account, second.instance}) == 4


async def test_seeded_messages_include_the_banner_example(storage: Storage) -> None:
    await demo.seed(storage)
    message = await storage.messages.get(demo.INSTANCE, demo.MESSAGE_ID)
    assert message is not None
    assert message.chat_jid == demo.CHAT_JID
    assert message.timestamp is not None and message.timestamp.tzinfo is not None


def test_banner_shows_tokens_and_requests_that_parse() -> None:
    tokens = demo.DemoTokens(account="acct-token", instance="inst-token")
    text = demo.banner(tokens, "http://127.0.0.1:9999")
    assert "account token:  acct-token" in text
    assert "instance token: inst-token" in text
    bodies = [json.loads(body) for body in re.findall(r"-d '([^']+)'", text)]
    assert bodies == [
        {"number": demo.CHAT_NUMBER, "favorite": True},
        {"messageId": demo.MESSAGE_ID, "favorite": True},
    ]
    urls = re.findall(r'curl -X POST "([^"]+)"', text)
    assert urls == ["http://127.0.0.1:9999/api/chat/favorite/demo"] * 2
    assert text.count('-H "token: inst-token"') == 2
