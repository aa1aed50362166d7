"""Unit tests of the pure resolver helpers: phone numbers and JIDs, cursors, page sizes.

No database: these functions only parse and format.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from favgate.errors import BadRequest, InvalidArgument, InvalidCursor
from favgate.resolvers.jids import MAX_LENGTH, normalize_number
from favgate.resolvers.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_cursor,
    encode_cursor,
    page_size,
)
from favgate.storage import Favorite, FavoriteTarget, FavoriteType, Position

USER_JID = "5511999999999@s.whatsapp.net"
OID = "507f1f77bcf86cd799439011"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOT_A_NUMBER = "expected a phone number of 7 to 15 digits or a WhatsApp JID"
# The same number in non-ASCII decimal digits, which Python's \d matches.
FULLWIDTH_NUMBER = "".join(chr(0xFF10 + int(digit)) for digit in "5511999999999")
ARABIC_INDIC_NUMBER = "".join(chr(0x0660 + int(digit)) for digit in "5511999999999")


# --- normalize_number -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5511999999999", USER_JID),
        ("+5511999999999", USER_JID),
        ("+55 (11) 99999-9999", USER_JID),
        ("55.11.99999.9999", USER_JID),
        ("  5511999999999\t", USER_JID),
        ("5511999999999@s.whatsapp.net", USER_JID),
        ("5511999999999@S.WhatsApp.NET", USER_JID),
        ("+55 11 99999-9999@s.whatsapp.net", USER_JID),
        ("5511999999999@c.us", USER_JID),
        ("5511999999999@C.US", USER_JID),
        ("1234567", "1234567@s.whatsapp.net"),  # 7 digits: the shortest number
        ("123456789012345", "123456789012345@s.whatsapp.net"),  # 15 digits: the longest
        ("120363012345678901@g.us", "120363012345678901@g.us"),
        ("5511999999999-1600000000@g.us", "5511999999999-1600000000@g.us"),
        ("123456789012345@lid", "123456789012345@lid"),
        ("status@broadcast", "status@broadcast"),
        ("1234567890@broadcast", "1234567890@broadcast"),
        ("120363000000000000@newsletter", "120363000000000000@newsletter"),
        # The length limit counts the stripped value: exactly MAX_LENGTH is accepted.
        ("-" * (MAX_LENGTH - 13) + "5511999999999", USER_JID),
        ("  " + "-" * (MAX_LENGTH - 13) + "5511999999999  ", USER_JID),
    ],
)
def test_normalize_number_accepts(raw: str, expected: str) -> None:
    assert normalize_number(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", NOT_A_NUMBER),
        ("   ", NOT_A_NUMBER),
        ("123456", NOT_A_NUMBER),
        ("1234567890123456", NOT_A_NUMBER),
        ("55119999x9999", NOT_A_NUMBER),
        ("5511999999999/", NOT_A_NUMBER),
        ("abc", NOT_A_NUMBER),
        # Non-ASCII digits never make a WhatsApp JID.
        (FULLWIDTH_NUMBER, NOT_A_NUMBER),
        (ARABIC_INDIC_NUMBER, NOT_A_NUMBER),
        (f"{ARABIC_INDIC_NUMBER}@s.whatsapp.net", "malformed JID for @s.whatsapp.net"),
        (f"{FULLWIDTH_NUMBER}@c.us", "malformed JID for @s.whatsapp.net"),
        (f"{ARABIC_INDIC_NUMBER}@g.us", "malformed JID for @g.us"),
        ("5511999999999@example.com", "unsupported JID server @example.com"),
        ("5511999999999@", "unsupported JID server @"),
        ("@s.whatsapp.net", "malformed JID for @s.whatsapp.net"),
        ("12345@s.whatsapp.net", "malformed JID for @s.whatsapp.net"),
        ("a@b@s.whatsapp.net", "malformed JID for @s.whatsapp.net"),
        ("1234@g.us", "malformed JID for @g.us"),
        ("12345-12@g.us", "malformed JID for @g.us"),
        ("group@g.us", "malformed JID for @g.us"),
        ("+55 11 99999-9999@g.us", "malformed JID for @g.us"),
        ("status@lid", "malformed JID for @lid"),
        ("news@newsletter", "malformed JID for @newsletter"),
        ("-" * (MAX_LENGTH - 12) + "5511999999999", f"must be at most {MAX_LENGTH} characters"),
        ("5" * 1000, f"must be at most {MAX_LENGTH} characters"),
    ],
)
def test_normalize_number_rejects(raw: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_number(raw)
    assert caught.value.message == f"Invalid number: {reason}"
    assert caught.value.code == "BAD_USER_INPUT"
    assert caught.value.status_code == 400


# --- cursors --------------------------------------------------------------------------


def favorite_at(favorited_at: datetime, favorite_id: str = OID) -> Favorite:
    return Favorite(
        id=favorite_id,
        instance="main",
        target=FavoriteTarget(type=FavoriteType.CHAT, chat_jid=USER_JID),
        favorite=True,
        favorited_at=favorited_at,
        updated_at=favorited_at,
    )


def raw_cursor(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def json_cursor(value: object) -> str:
    return raw_cursor(json.dumps(value).encode())


@pytest.mark.parametrize(
    "favorited_at",
    [
        datetime(2025, 3, 14, 15, 9, 26, 535000, tzinfo=UTC),
        # Float arithmetic turns these into one millisecond less (x.xxx * 1000 = ...999.99).
        datetime(2004, 6, 3, 15, 29, 47, 11000, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 1, 1000, tzinfo=UTC),
        EPOCH,
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ],
)
def test_cursor_round_trip(favorited_at: datetime) -> None:
    cursor = encode_cursor(favorite_at(favorited_at))
    assert decode_cursor(cursor) == Position(favorited_at=favorited_at, id=OID)


@pytest.mark.parametrize(
    "start",
    [
        datetime(1978, 7, 7, tzinfo=UTC),
        datetime(2004, 6, 3, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2038, 8, 15, tzinfo=UTC),
    ],
)
def test_cursor_round_trip_keeps_every_millisecond(start: datetime) -> None:
    # The sort key is (favorited_at, _id) at BSON's millisecond precision: a cursor one
    # millisecond off skips or repeats favorites at the page boundary. Float seconds
    # times 1000 falls short of the integer for about a quarter of the milliseconds in
    # these ranges (not today's), so every millisecond of a few seconds is checked.
    moments = [start + timedelta(milliseconds=ms) for ms in range(5000)]
    wrong = [
        at for at in moments if decode_cursor(encode_cursor(favorite_at(at))).favorited_at != at
    ]
    assert wrong == []


def test_cursor_is_opaque_and_url_safe() -> None:
    favorite_id = str(ObjectId())
    cursor = encode_cursor(favorite_at(datetime(2025, 1, 1, tzinfo=UTC), favorite_id))
    assert cursor.isascii()
    assert not set(cursor) & set("+/= ")
    assert favorite_id not in cursor  # it is not the bare id
    assert decode_cursor(cursor).id == favorite_id


def test_cursor_decodes_padded_too() -> None:
    cursor = encode_cursor(favorite_at(datetime(2025, 1, 1, tzinfo=UTC)))
    padded = cursor + "=" * (-len(cursor) % 4)
    assert decode_cursor(padded) == decode_cursor(cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("", id="empty"),
        pytest.param("a", id="one-char"),
        pytest.param("!!!!", id="not-base64"),
        pytest.param("é", id="non-ascii"),
        pytest.param("====", id="padding-only"),
        pytest.param(raw_cursor(b"not json"), id="not-json"),
        pytest.param(raw_cursor(b"\xff\xfe\xfd"), id="not-utf8"),
        pytest.param(raw_cursor(b"[" * 5000 + b"]" * 5000), id="deeply-nested"),
        pytest.param(json_cursor(None), id="null"),
        pytest.param(json_cursor(1700000000000), id="number"),
        pytest.param(json_cursor("1700000000000"), id="string"),
        pytest.param(json_cursor([]), id="empty-list"),
        pytest.param(json_cursor([1700000000000]), id="one-element"),
        pytest.param(json_cursor([1700000000000, OID, 1]), id="three-elements"),
        pytest.param(json_cursor({"millis": 1700000000000, "id": OID}), id="object"),
        pytest.param(json_cursor([OID, 1700000000000]), id="swapped"),
        pytest.param(json_cursor(["1700000000000", OID]), id="millis-as-string"),
        pytest.param(json_cursor([1700000000000.5, OID]), id="millis-as-float"),
        pytest.param(json_cursor([True, OID]), id="millis-as-bool"),
        pytest.param(json_cursor([None, OID]), id="millis-null"),
        pytest.param(raw_cursor(b'[NaN,"' + OID.encode() + b'"]'), id="millis-nan"),
        pytest.param(raw_cursor(b'[Infinity,"' + OID.encode() + b'"]'), id="millis-infinity"),
        pytest.param(json_cursor([10**20, OID]), id="millis-overflow"),
        pytest.param(json_cursor([-(10**20), OID]), id="millis-underflow"),
        pytest.param(json_cursor([1700000000000, None]), id="id-null"),
        pytest.param(json_cursor([1700000000000, 12345]), id="id-number"),
        pytest.param(json_cursor([1700000000000, "not-an-object-id"]), id="id-garbage"),
        pytest.param(json_cursor([1700000000000, OID[:-1]]), id="id-23-hex"),
        pytest.param(json_cursor([1700000000000, OID + "0"]), id="id-25-hex"),
        pytest.param(json_cursor([1700000000000, "z" * 24]), id="id-24-non-hex"),
        pytest.param(json_cursor([1700000000000, "abcdefghijkl"]), id="id-12-chars"),
        pytest.param(json_cursor([1700000000000, [OID]]), id="id-list"),
    ],
)
def test_garbage_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(cursor)
    assert caught.value.message == "Invalid cursor"
    assert caught.value.code == "BAD_USER_INPUT"


# --- page sizes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "size"),
    [
        (None, DEFAULT_PAGE_SIZE),
        (0, 0),
        (1, 1),
        (20, 20),
        (MAX_PAGE_SIZE - 1, MAX_PAGE_SIZE - 1),
        (MAX_PAGE_SIZE, MAX_PAGE_SIZE),
        (MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE),
        (500, MAX_PAGE_SIZE),
        (2**31 - 1, MAX_PAGE_SIZE),
    ],
)
def test_page_size(first: int | None, size: int) -> None:
    assert page_size(first) == size


def test_page_size_defaults() -> None:
    assert (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE) == (20, 100)


@pytest.mark.parametrize("first", [-1, -100, -(2**31)])
def test_negative_page_size_is_refused(first: int) -> None:
    with pytest.raises(BadRequest) as caught:
        page_size(first)
    assert caught.value.message == "first must not be negative"
    assert caught.value.code == "BAD_USER_INPUT"
