"""One chat, one identity (issue 13): every spelling of a chat finds its one record.

Over HTTP, through the REST route and GraphQL, against the messages an instance's data
holds: the Brazilian ninth digit both ways, Mexico's 521, LID chats with their
phone-number JID as ``chat_jid_alt``, and what stays as it was (landlines, groups).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import CommandLog, Tenants, serving

from favgate.config import Settings
from favgate.importing import parse_messages
from favgate.resolvers.identities import candidates
from favgate.storage import Storage

BR_13 = "5521987654321"  # area code 21, the ninth digit, then 8 digits from 8
BR_12 = "552187654321"
MX_13 = "5215512345678"
MX_12 = "525512345678"
LID = "123456789012345@lid"
LID_NUMBER = "5531991112222"  # the LID chat's phone number, in its 13-digit form


def jid(number: str) -> str:
    return f"{number}@s.whatsapp.net"


FAVORITE = """
query One($number: String, $messageId: String) {
  favorite(instance: "main", number: $number, messageId: $messageId) {
    chatJid messageId favorite
  }
}
"""
FAVORITES = """
query Chat($chatJid: String) {
  favorites(instance: "main", chatJid: $chatJid) { totalCount edges { node { chatJid messageId } } }
}
"""
SET_FAVORITES = """
mutation Batch($items: [FavoriteInput!]!) {
  setFavorites(instance: "main", items: $items) { ... on FavoriteResult { chatJid } }
}
"""


class Api:
    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.headers = {"token": token}

    async def rest(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/chat/favorite/main", json=body, headers=self.headers
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def favorite(self, number: str) -> str:
        """The chat a favorite by ``number`` is recorded on, as the REST route answers."""
        return str((await self.rest(number=number, favorite=True))["chat_jid"])

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.headers
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    async def record(self, number: str) -> dict[str, Any] | None:
        record: dict[str, Any] | None = (await self.graphql(FAVORITE, number=number))["favorite"]
        return record

    async def listed(self, chat_jid: str) -> list[str]:
        """The chat JIDs of the current favorites ``favorites(chatJid:)`` lists."""
        page = (await self.graphql(FAVORITES, chatJid=chat_jid))["favorites"]
        return [edge["node"]["chatJid"] for edge in page["edges"]]


@pytest.fixture
def api(client: httpx.AsyncClient, tenants: Tenants) -> Api:
    return Api(client, tenants.main_token)


async def messages(storage: Storage, *lines: str) -> None:
    """Messages of "main", as ``favgate messages import`` reads them."""
    await storage.messages.upsert_many("main", parse_messages(lines))


async def assert_one_chat(api: Api, spellings: list[str], chat: str) -> None:
    """Every spelling finds the one record of ``chat``, and lists it once."""
    for spelling in spellings:
        assert (await api.record(spelling)) == {
            "chatJid": chat,
            "messageId": None,
            "favorite": True,
        }
        assert await api.listed(spelling) == [chat]


# --- The Brazilian ninth digit ----------------------------------------------------------


@pytest.mark.parametrize(
    ("known", "given"), [(BR_12, BR_13), (BR_13, BR_12)], ids=["12-known", "13-known"]
)
async def test_the_ninth_digit_resolves_to_the_form_the_messages_have(
    api: Api, storage: Storage, known: str, given: str
) -> None:
    await messages(storage, f'{{"id": "BR1", "chat_jid": "{jid(known)}"}}')
    assert await api.favorite(given) == jid(known)
    assert await api.favorite(f"+{given}@c.us") == jid(known)  # the same record again
    spellings = [given, known, jid(given), jid(known), "+55 (21) 98765-4321"]
    await assert_one_chat(api, spellings, jid(known))
    # The chat's message favorite lists with it, whichever spelling asks.
    await api.rest(messageId="BR1", favorite=True)
    page = await api.graphql(FAVORITES, chatJid=given)
    assert page["favorites"]["totalCount"] == 2


async def test_with_neither_form_known_the_first_form_given_is_kept(api: Api) -> None:
    assert await api.favorite(BR_12) == jid(BR_12)
    # The favorite is now the chat's data: the other spelling finds it at once.
    assert await api.favorite(BR_13) == jid(BR_12)
    await assert_one_chat(api, [BR_13, BR_12], jid(BR_12))
    off = await api.rest(number=BR_13, favorite=False)
    assert (off["chat_jid"], off["favorite"]) == (jid(BR_12), False)
    assert (await api.record(BR_13)) == {
        "chatJid": jid(BR_12),
        "messageId": None,
        "favorite": False,
    }


async def test_with_both_forms_known_the_form_given_is_kept(api: Api, storage: Storage) -> None:
    await messages(
        storage,
        f'{{"id": "B12", "chat_jid": "{jid(BR_12)}"}}',
        f'{{"id": "B13", "chat_jid": "{jid(BR_13)}"}}',
    )
    assert await api.favorite(BR_12) == jid(BR_12)
    assert await api.favorite(BR_13) == jid(BR_13)


async def test_messages_decide_over_an_older_favorite(
    api: Api, storage: Storage, settings: Settings, tenants: Tenants
) -> None:
    assert await api.favorite(BR_13) == jid(BR_13)  # before the engine wrote any message
    await messages(storage, f'{{"id": "BR1", "chat_jid": "{jid(BR_12)}"}}')
    async with serving(settings) as client:  # another gateway, its caches cold
        assert await Api(client, tenants.main_token).favorite(BR_13) == jid(BR_12)


@pytest.mark.parametrize(
    ("number", "lookalike"),
    [
        # A landline of São Paulo: 8 digits from 2 to 5, never a ninth digit.
        ("551133334444", "5511933334444"),
        ("5511933334444", "551133334444"),
        ("5501987654321", "550187654321"),  # no area code starts with 0
        ("5215512345678", "52551234567"),  # Mexico's other form has 10 digits after 52
        ("14155550123", "141555501230"),  # another country
    ],
)
async def test_other_numbers_are_unchanged(
    api: Api, storage: Storage, number: str, lookalike: str
) -> None:
    await messages(storage, f'{{"id": "X1", "chat_jid": "{jid(lookalike)}"}}')
    assert await api.favorite(number) == jid(number)
    assert candidates(jid(number))[1:] != (jid(lookalike),)


# --- Mexico -----------------------------------------------------------------------------


@pytest.mark.parametrize(("known", "given"), [(MX_13, MX_12), (MX_12, MX_13)])
async def test_mexican_mobiles_with_and_without_the_1(
    api: Api, storage: Storage, known: str, given: str
) -> None:
    await messages(storage, f'{{"id": "MX1", "chat_jid": "{jid(known)}"}}')
    assert await api.favorite(given) == jid(known)
    await assert_one_chat(api, [given, known, "+52 1 55 1234 5678"], jid(known))


# --- LIDs -------------------------------------------------------------------------------


async def test_a_lid_chat_favorited_by_number_is_the_lid_chats_record(
    api: Api, storage: Storage
) -> None:
    # The engine knows the chat by its LID, its phone number as the alternate (given
    # here in another spelling, which the import normalizes).
    await messages(
        storage, f'{{"id": "L1", "chat_jid": "{LID}", "chat_jid_alt": "+55 31 99111-2222"}}'
    )
    assert await api.favorite(LID_NUMBER) == LID
    assert await api.favorite(LID_NUMBER[:4] + LID_NUMBER[5:]) == LID  # the 12-digit form too
    await assert_one_chat(api, [LID_NUMBER, jid(LID_NUMBER), LID], LID)
    message = await api.rest(messageId="L1", favorite=True)
    assert message["chat_jid"] == LID
    page = await api.graphql(FAVORITES, chatJid=LID_NUMBER)
    assert page["favorites"]["totalCount"] == 2


async def test_a_phone_number_chat_is_found_by_its_lid(api: Api, storage: Storage) -> None:
    await messages(
        storage, f'{{"id": "P1", "chat_jid": "{jid(LID_NUMBER)}", "chat_jid_alt": "{LID}"}}'
    )
    assert await api.favorite(LID) == jid(LID_NUMBER)
    await assert_one_chat(api, [LID, LID_NUMBER], jid(LID_NUMBER))


# --- Batches and groups -----------------------------------------------------------------


async def test_a_batch_resolves_every_spelling_to_one_record(api: Api, storage: Storage) -> None:
    await messages(storage, f'{{"id": "BR1", "chat_jid": "{jid(BR_12)}"}}')
    items = [{"number": n, "favorite": True} for n in (BR_13, BR_12, "120363012345678901@g.us")]
    data = await api.graphql(SET_FAVORITES, items=items)
    chats = [outcome["chatJid"] for outcome in data["setFavorites"]]
    assert chats == [jid(BR_12), jid(BR_12), "120363012345678901@g.us"]
    page = await api.graphql(FAVORITES, chatJid=None)
    assert page["favorites"]["totalCount"] == 2


async def test_another_instances_messages_say_nothing(api: Api, storage: Storage) -> None:
    # Tenants share the collections, never their data: "rival" knows the 12-digit form.
    rival = [
        {"id": "R1", "chat_jid": jid(BR_12)},
        {"id": "R2", "chat_jid": LID, "chat_jid_alt": jid(BR_13)},
    ]
    await storage.messages.upsert_many("rival", rival)
    assert await api.favorite(BR_13) == jid(BR_13)


# --- What it costs ----------------------------------------------------------------------


@pytest.mark.both_drivers
async def test_a_cold_spelling_costs_one_lookup_and_a_warm_one_none(
    api: Api, storage: Storage, commands: CommandLog
) -> None:
    await messages(storage, f'{{"id": "BR1", "chat_jid": "{jid(BR_12)}"}}')
    commands.clear()
    await api.favorite(BR_13)  # cold: both spellings are looked up at once
    assert commands.commands.count(("aggregate", "instances")) == 1
    commands.clear()
    await api.favorite(BR_12)
    await api.record(BR_13)
    await api.listed(jid(BR_12))
    await api.rest(number="120363012345678901@g.us", favorite=True)  # never looked up
    assert ("aggregate", "instances") not in commands.commands
