"""``favgate favorites merge-aliases`` on favorites written the old way (issue 13): one
record per spelling of a chat, as favgate recorded them before it resolved identities.

The records are written through the storage layer, which takes a chat JID as it is (as
the old resolvers passed it on); the command runs in process, in a thread (it runs its own
event loop), and the result is read back through the gateway's GraphQL API.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, Tenants, with_database

from favgate.cli import main
from favgate.config import Settings
from favgate.storage import FavoriteTarget, FavoriteType, Storage

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHAT_12 = "551199999999@s.whatsapp.net"  # CHAT_JID (whose messages "main" has) in 12 digits
NEW_13, NEW_12 = "5521987654321@s.whatsapp.net", "552187654321@s.whatsapp.net"
LID, LID_PN = "123456789012345@lid", "5531991112222@s.whatsapp.net"
LANDLINE = "551133334444@s.whatsapp.net"
BOTH_13, BOTH_12 = "5541987654321@s.whatsapp.net", "554187654321@s.whatsapp.net"
GROUP = "120363012345678901@g.us"

RECORD = """
query One($number: String!) { favorite(instance: "main", number: $number) { chatJid favorite } }
"""
ALL = '{ favorites(instance: "main", first: 50) { edges { node { chatJid } } } }'


async def old_record(storage: Storage, jid: str, favorite: bool, minutes: float) -> None:
    target = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=jid)
    await storage.favorites.set("main", target, favorite, T0 + timedelta(minutes=minutes))


@pytest.fixture
async def old_data(storage: Storage, tenants: Tenants) -> None:
    """Favorites recorded under every spelling clients sent, before resolution."""
    await storage.messages.upsert_many(
        "main",
        [
            {"id": "L1", "chat_jid": LID, "chat_jid_alt": LID_PN},
            {"id": "B13", "chat_jid": BOTH_13},
            {"id": "B12", "chat_jid": BOTH_12},
        ],
    )
    await old_record(storage, CHAT_JID, True, 1)
    await old_record(storage, CHAT_12, True, 2)
    await old_record(storage, CHAT_12, False, 2.5)  # the latest: the chat is unfavorited
    await old_record(storage, NEW_13, True, 3)  # no messages: the latest spelling wins
    await old_record(storage, NEW_12, True, 4)
    await old_record(storage, LID, True, 5)
    await old_record(storage, LID, False, 5.5)
    await old_record(storage, LID_PN, True, 6)  # favorited again later, by number
    for jid in (LANDLINE, BOTH_13, BOTH_12, GROUP):  # none of these is an alias
        await old_record(storage, jid, True, 7)


async def merge_aliases(
    settings: Settings, capsys: pytest.CaptureFixture[str], *options: str
) -> list[dict[str, Any]]:
    uri = with_database(settings.mongodb_uri or "", settings.database)
    argv = ["favorites", "merge-aliases", "--instance", "main", *options]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MONGODB_URI", uri)
        capsys.readouterr()
        status = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), err
    return [json.loads(line) for line in out.splitlines()]


def summary(groups: list[dict[str, Any]]) -> dict[str, tuple[bool, list[str]]]:
    return {
        group["chat_jid"]: (group["favorite"], sorted(r["chat_jid"] for r in group["records"]))
        for group in groups
    }


EXPECTED = {
    CHAT_JID: (False, sorted([CHAT_JID, CHAT_12])),
    NEW_12: (True, sorted([NEW_13, NEW_12])),
    LID: (True, sorted([LID, LID_PN])),
}


async def test_merge_aliases_lists_then_merges(
    old_data: None,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    client: httpx.AsyncClient,
    tenants: Tenants,
) -> None:
    headers = {"token": tenants.main_token}

    async def graphql(query: str, **variables: Any) -> dict[str, Any]:
        body = {"query": query, "variables": variables}
        data: dict[str, Any] = (await client.post("/graphql", json=body, headers=headers)).json()
        assert "errors" not in data, data
        return dict(data["data"])

    async def listed() -> list[str]:
        return sorted(e["node"]["chatJid"] for e in (await graphql(ALL))["favorites"]["edges"])

    before = await listed()
    dry_run = await merge_aliases(settings, capsys)
    assert summary(dry_run) == EXPECTED
    assert {group["applied"] for group in dry_run} == {False}
    assert await listed() == before  # nothing changed

    applied = await merge_aliases(settings, capsys, "--apply")
    assert summary(applied) == EXPECTED
    assert await listed() == sorted([NEW_12, LID, LANDLINE, BOTH_13, BOTH_12, GROUP])
    for spelling, chat, favorite in [
        ("5511999999999", CHAT_JID, False),
        ("551199999999", CHAT_JID, False),
        ("5521987654321", NEW_12, True),
        ("5531991112222", LID, True),
        (LID, LID, True),
    ]:
        record = (await graphql(RECORD, number=spelling))["favorite"]
        assert record == {"chatJid": chat, "favorite": favorite}, spelling
    assert await merge_aliases(settings, capsys, "--apply") == []  # nothing left to merge


async def test_an_unknown_instance_is_an_error(
    settings: Settings, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = with_database(settings.mongodb_uri or "", settings.database)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MONGODB_URI", uri)
        argv = ["favorites", "merge-aliases", "--instance", "ghost"]
        status = await asyncio.to_thread(main, argv)
    assert status == 1
    assert json.loads(capsys.readouterr().err) == {"error": "Instance not found: ghost"}
