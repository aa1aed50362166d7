"""The REST-compatible route ``POST /api/chat/favorite/{instance}`` against its contract
(``shared/spec/chat-favorite.md``): examples, errors, order of checks, auth, numbers,
precedence and idempotency, all against a real database."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, GROUP_JID, MESSAGE_ID, Tenants

from favgate.storage import Storage

SUCCESS_KEYS = ["success", "message", "chat_jid", "message_id", "favorite", "type"]
CHAT_ON = "Chat favorited successfully"
CHAT_OFF = "Chat unfavorited successfully"
MESSAGE_ON = "Message favorited successfully"
MESSAGE_OFF = "Message unfavorited successfully"


def ok(message: str, chat_jid: str, message_id: str | None, favorite: bool) -> dict[str, Any]:
    kind = "chat" if message_id is None else "message"
    return {
        "success": True,
        "message": message,
        "chat_jid": chat_jid,
        "message_id": message_id,
        "favorite": favorite,
        "type": kind,
    }


def error(message: str) -> dict[str, Any]:
    return {"success": False, "error": {"message": message}}


CHAT_BODY = {"number": "5511999999999", "favorite": True}
CHAT_OK = ok(CHAT_ON, CHAT_JID, None, True)
MESSAGE_BODY = {"messageId": MESSAGE_ID, "favorite": True}
MESSAGE_OK = ok(MESSAGE_ON, CHAT_JID, MESSAGE_ID, True)


async def post(
    client: httpx.AsyncClient,
    instance: str,
    body: Any,
    token: str | None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST to the route; ``bytes`` bodies are sent raw, anything else as JSON."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["token"] = token
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(f"/api/chat/favorite/{instance}", content=content, headers=sent)


def assert_ok(response: httpx.Response, expected: dict[str, Any]) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == expected
    assert list(body) == SUCCESS_KEYS


async def favorites(storage: Storage, **query: Any) -> int:
    return int(await storage._database["favorites"].count_documents(query))


async def assert_rejected(
    storage: Storage, response: httpx.Response, status: int, message: str
) -> None:
    """An error in the contract's shape, and nothing written to the database."""
    assert response.status_code == status, response.text
    assert response.json() == error(message)
    assert await favorites(storage) == 0


# --- The documented examples -------------------------------------------------------------


async def test_documented_examples(client: httpx.AsyncClient, tenants: Tenants) -> None:
    token = tenants.main_token
    chat = await post(client, "main", {"number": "5511999999999", "favorite": True}, token)
    assert_ok(chat, CHAT_OK)
    message = await post(client, "main", {"messageId": MESSAGE_ID, "favorite": True}, token)
    assert_ok(message, MESSAGE_OK)
    removed = await post(client, "main", {"messageId": MESSAGE_ID, "favorite": False}, token)
    assert_ok(removed, ok(MESSAGE_OFF, CHAT_JID, MESSAGE_ID, False))


async def test_chat_unfavorite_after_favorite(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.main_token
    await post(client, "main", CHAT_BODY, token)
    response = await post(client, "main", {"number": "5511999999999", "favorite": False}, token)
    assert_ok(response, ok(CHAT_OFF, CHAT_JID, None, False))
    assert await favorites(storage, type="chat", chat_jid=CHAT_JID, favorite=False) == 1


# --- The documented errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/chat/favorite/", "/api/chat/favorite", "/api/chat/favorite/%20"]
)
@pytest.mark.parametrize("token", ["valid", "unknown", None])
async def test_instance_name_required(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, path: str, token: str | None
) -> None:
    """Checked first: a blank name beats a bad or missing token."""
    headers = {} if token is None else {"token": tenants.acme_token if token == "valid" else token}
    response = await client.post(path, json=CHAT_BODY, headers=headers)
    await assert_rejected(storage, response, 400, "Instance name is required")


INVALID_BODIES = [
    (b'{"favorite": tru', "Expecting value at line 1 column 14"),
    (b"", "Expecting value at line 1 column 1"),
    (b"\xff", "not valid UTF-8"),
    # Under the 64 KiB body cap, and still far deeper than the JSON parser recurses.
    (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    (b'{"favorite": true, "number": ' + b"1" * 5000 + b"}", "number too large"),
    ([CHAT_BODY], "expected a JSON object"),
    ("5511999999999", "expected a JSON object"),
    ({"number": "5511999999999"}, "favorite is required"),
    ({"number": "5511999999999", "favorite": "true"}, "favorite must be a boolean"),
    ({"number": "5511999999999", "favorite": 1}, "favorite must be a boolean"),
    ({"number": "5511999999999", "favorite": None}, "favorite must be a boolean"),
    ({"number": {"$gt": ""}, "favorite": True}, "number must be a string"),
    ({"number": ["5511999999999"], "favorite": True}, "number must be a string"),
    ({"number": 5511999999999, "favorite": True}, "number must be a string"),
    ({"messageId": {"$gt": ""}, "favorite": True}, "messageId must be a string"),
    ({"messageId": [MESSAGE_ID], "favorite": True}, "messageId must be a string"),
    ({"messageId": 42, "favorite": True}, "messageId must be a string"),
]


@pytest.mark.parametrize(("body", "reason"), INVALID_BODIES)
async def test_invalid_request_body(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, body: Any, reason: str
) -> None:
    response = await post(client, "main", body, tenants.main_token)
    await assert_rejected(storage, response, 400, f"Invalid request body: {reason}")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"messageId": "\\ud800", "favorite": true}', "Invalid messageId: must be valid Unicode"),
        (b'{"number": "x@\\ud800", "favorite": true}', "Invalid number: must be valid Unicode"),
    ],
)
async def test_lone_surrogates_are_refused(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, body: bytes, message: str
) -> None:
    # JSON escapes can spell strings that neither BSON nor a UTF-8 response can carry.
    response = await post(client, "main", body, tenants.main_token)
    await assert_rejected(storage, response, 400, message)


@pytest.mark.parametrize(
    "body",
    [
        {"favorite": True},
        {"number": None, "messageId": None, "favorite": True},
        {"number": "", "messageId": "", "favorite": True},
        {"number": "  ", "messageId": " ", "favorite": False},
    ],
)
async def test_target_required(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, body: dict[str, Any]
) -> None:
    response = await post(client, "main", body, tenants.main_token)
    await assert_rejected(storage, response, 400, "Either number or messageId is required")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"token": "not-a-token"},
        {"token": ""},
        {"Authorization": ""},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-token"},
        {"token": "x" * 10_000},
    ],
)
async def test_invalid_token(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, headers: dict[str, str]
) -> None:
    response = await post(client, "main", CHAT_BODY, None, headers)
    await assert_rejected(storage, response, 401, "Invalid token")


@pytest.mark.parametrize(
    ("instance", "token"),
    [
        ("ghost", "acme_token"),  # does not exist
        ("rival", "acme_token"),  # another account's instance
        ("main", "globex_token"),
        ("main", "rival_token"),
        ("offline", "main_token"),  # a sibling of the token's own instance
        ("main", "offline_token"),
    ],
)
async def test_instance_not_found(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, instance: str, token: str
) -> None:
    response = await post(client, instance, CHAT_BODY, getattr(tenants, token))
    await assert_rejected(storage, response, 404, "Instance not found")


@pytest.mark.parametrize(
    "body",
    [
        {"messageId": "NOSUCHMESSAGE", "favorite": True},
        {"messageId": "NOSUCHMESSAGE", "favorite": False},
        {"messageId": "RIVALMSG1", "favorite": True},  # a message of another instance
        # messageId takes precedence: an unknown one does not fall back to the number.
        {"number": "5511999999999", "messageId": "NOSUCHMESSAGE", "favorite": True},
    ],
)
async def test_message_not_found(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, body: dict[str, Any]
) -> None:
    response = await post(client, "main", body, tenants.main_token)
    await assert_rejected(storage, response, 404, "Message not found")


@pytest.mark.parametrize("token", ["acme_token", "offline_token"])
@pytest.mark.parametrize("favorite", [True, False])
async def test_instance_not_connected(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, token: str, favorite: bool
) -> None:
    body = {"number": "5511999999999", "favorite": favorite}
    response = await post(client, "offline", body, getattr(tenants, token))
    await assert_rejected(storage, response, 503, "Instance is not connected to WhatsApp")


# --- Order of checks ---------------------------------------------------------------------

BAD_BODY = "Invalid request body: "
NOT_CONNECTED = "Instance is not connected to WhatsApp"
ORDER = [
    # (instance, token, body, status, message): each row breaks two rules at once.
    (" ", None, {"favorite": True}, 400, "Instance name is required"),
    ("ghost", "bad", CHAT_BODY, 401, "Invalid token"),
    ("main", "bad", b"{not json", 401, "Invalid token"),
    ("ghost", "acme_token", b"{not json", 404, "Instance not found"),
    ("rival", "acme_token", {"favorite": "yes"}, 404, "Instance not found"),
    ("main", "main_token", {"favorite": "yes"}, 400, f"{BAD_BODY}favorite must be a boolean"),
    ("main", "main_token", {"number": {"$ne": None}}, 400, f"{BAD_BODY}favorite is required"),
    ("offline", "acme_token", {"favorite": True}, 400, "Either number or messageId is required"),
    ("offline", "acme_token", {"messageId": "NOPE", "favorite": True}, 503, NOT_CONNECTED),
]


@pytest.mark.parametrize(("instance", "token", "body", "status", "message"), ORDER)
async def test_order_of_checks(
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    instance: str,
    token: str | None,
    body: Any,
    status: int,
    message: str,
) -> None:
    token_value = getattr(tenants, token, token) if token else None
    response = await post(client, instance, body, token_value)
    await assert_rejected(storage, response, status, message)


# --- Auth --------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["acme_token", "main_token"])
@pytest.mark.parametrize("header", ["token", "Authorization", "Authorization Bearer"])
async def test_token_headers(
    client: httpx.AsyncClient, tenants: Tenants, token: str, header: str
) -> None:
    value = getattr(tenants, token)
    headers = {
        "token": {"token": value},
        "Authorization": {"Authorization": value},
        "Authorization Bearer": {"Authorization": f"Bearer {value}"},
    }[header]
    assert_ok(await post(client, "main", CHAT_BODY, None, headers), CHAT_OK)


@pytest.mark.parametrize("first", ["token", "Authorization"])
async def test_a_repeated_token_field_counts_by_its_first_value(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, first: str
) -> None:
    """As Starlette's ``Headers.get`` reads a field: its first value, whatever follows."""
    url = "/api/chat/favorite/main"
    good, bad = tenants.main_token, "not-a-token"
    for values, status in (((good, bad), 200), ((bad, good), 401)):
        headers = [("Content-Type", "application/json"), *((first, value) for value in values)]
        response = await client.post(url, json=CHAT_BODY, headers=headers)
        assert response.status_code == status, response.text
    assert await favorites(storage) == 1


async def test_account_token_reaches_all_its_instances(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    assert_ok(await post(client, "main", CHAT_BODY, tenants.acme_token), CHAT_OK)
    # Past the auth checks: the only thing wrong with `offline` is its connection.
    response = await post(client, "offline", CHAT_BODY, tenants.acme_token)
    assert response.status_code == 503
    assert_ok(await post(client, "rival", CHAT_BODY, tenants.globex_token), CHAT_OK)


# --- Numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "chat_jid"),
    [
        ("5511999999999", CHAT_JID),
        ("+55 (11) 99999-9999", CHAT_JID),
        ("55.11.99999.9999", CHAT_JID),
        ("5511999999999@c.us", CHAT_JID),
        (CHAT_JID, CHAT_JID),
        (GROUP_JID, GROUP_JID),
        ("123456789@lid", "123456789@lid"),
        ("status@broadcast", "status@broadcast"),
        ("120363111111111111@newsletter", "120363111111111111@newsletter"),
    ],
)
async def test_number_normalization(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, number: str, chat_jid: str
) -> None:
    response = await post(client, "main", {"number": number, "favorite": True}, tenants.main_token)
    assert_ok(response, ok(CHAT_ON, chat_jid, None, True))
    assert await favorites(storage, type="chat", chat_jid=chat_jid, favorite=True) == 1


@pytest.mark.parametrize(
    "number",
    [
        "55abc11999999999",
        "12345",
        "1" * 16,
        "x@example.com",
        "abc@g.us",
        "+55 11 9999 9999 9999",
        "\uff15" * 13,  # fullwidth digits
        "\u0665" * 13,  # Arabic-Indic digits
        "5" * 70,
    ],
)
async def test_invalid_number(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, number: str
) -> None:
    response = await post(client, "main", {"number": number, "favorite": True}, tenants.main_token)
    assert response.status_code == 400
    body = response.json()
    assert body == error(body["error"]["message"])
    assert body["error"]["message"].startswith("Invalid number: ")
    assert await favorites(storage) == 0


async def test_message_id_too_long(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    body = {"messageId": "A" * 129, "favorite": True}
    response = await post(client, "main", body, tenants.main_token)
    message = "Invalid messageId: must be at most 128 characters"
    await assert_rejected(storage, response, 400, message)


# --- messageId takes precedence over number ----------------------------------------------


@pytest.mark.parametrize("number", ["5511999999999", "not a number"])
async def test_message_id_takes_precedence(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, number: str
) -> None:
    """The favorite lands on the message, in the message's chat, whatever the number says."""
    body = {"number": number, "messageId": "GROUPMSG1", "favorite": True}
    response = await post(client, "main", body, tenants.main_token)
    assert_ok(response, ok(MESSAGE_ON, GROUP_JID, "GROUPMSG1", True))
    assert await favorites(storage) == 1
    assert await favorites(storage, type="message", message_id="GROUPMSG1", chat_jid=GROUP_JID) == 1


async def test_precedence_when_removing(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.main_token
    await post(client, "main", CHAT_BODY, token)
    await post(client, "main", MESSAGE_BODY, token)
    body = {"number": "5511999999999", "messageId": MESSAGE_ID, "favorite": False}
    assert_ok(await post(client, "main", body, token), ok(MESSAGE_OFF, CHAT_JID, MESSAGE_ID, False))
    assert await favorites(storage, type="chat", favorite=True) == 1
    assert await favorites(storage, type="message", favorite=False) == 1


# --- Idempotency -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (CHAT_BODY, CHAT_OK),
        (MESSAGE_BODY, MESSAGE_OK),
    ],
)
async def test_repeating_a_request(
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    body: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    for _ in range(3):
        assert_ok(await post(client, "main", body, tenants.main_token), expected)
    assert await favorites(storage) == 1


async def test_spellings_of_one_chat_share_one_record(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    for number in ["5511999999999", "+55 (11) 99999-9999", "5511999999999@c.us"]:
        body = {"number": number, "favorite": True}
        assert_ok(await post(client, "main", body, tenants.acme_token), CHAT_OK)
    assert await favorites(storage) == 1


async def test_unfavorite_then_favorite_again(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    token = tenants.main_token
    for favorite, message in [(True, MESSAGE_ON), (False, MESSAGE_OFF), (True, MESSAGE_ON)]:
        body = {"messageId": MESSAGE_ID, "favorite": favorite}
        expected = ok(message, CHAT_JID, MESSAGE_ID, favorite)
        assert_ok(await post(client, "main", body, token), expected)
    assert await favorites(storage) == 1
    assert await favorites(storage, favorite=True) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"number": "5511999999999", "favorite": False}, ok(CHAT_OFF, CHAT_JID, None, False)),
        (
            {"messageId": MESSAGE_ID, "favorite": False},
            ok(MESSAGE_OFF, CHAT_JID, MESSAGE_ID, False),
        ),
    ],
)
async def test_unfavoriting_what_was_never_favorited(
    client: httpx.AsyncClient,
    tenants: Tenants,
    storage: Storage,
    body: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    for _ in range(2):
        assert_ok(await post(client, "main", body, tenants.main_token), expected)
    assert await favorites(storage) == 0


@pytest.mark.parametrize("body", [CHAT_BODY, MESSAGE_BODY])
async def test_concurrent_identical_requests(
    client: httpx.AsyncClient, tenants: Tenants, storage: Storage, body: dict[str, Any]
) -> None:
    responses = await asyncio.gather(
        *(post(client, "main", body, tenants.main_token) for _ in range(20))
    )
    assert {response.status_code for response in responses} == {200}
    assert len({response.text for response in responses}) == 1
    assert await favorites(storage) == 1


# --- Routing errors keep the error shape -------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_method_not_allowed(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/api/chat/favorite/main")
    assert response.status_code == 405
    assert response.json() == error("Method Not Allowed")
    assert response.headers["allow"] == "POST"


async def test_unknown_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat/favourite/main", json={"favorite": True})
    assert response.status_code == 404
    assert response.json() == error("Not Found")
