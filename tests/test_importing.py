"""Parsing JSON Lines for ``favgate messages import``: good and bad lines, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from favgate.importing import InvalidLine, parse_messages

CHAT_JID = "5511999999999@s.whatsapp.net"
NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
NOON_UNIX = 1767614400  # NOON in Unix seconds


def line(**fields: Any) -> str:
    return json.dumps({"id": "M1", "chat_jid": CHAT_JID, **fields})


def parse_one(text: str) -> dict[str, Any]:
    [message] = parse_messages([text])
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            line(),
            {"id": "M1", "chat_jid": CHAT_JID},
            id="minimal-omitted-fields-left-out",
        ),
        pytest.param(
            line(from_me=True, text="hi", timestamp="2026-01-05T12:00:00Z"),
            {"id": "M1", "chat_jid": CHAT_JID, "from_me": True, "timestamp": NOON, "text": "hi"},
            id="all-known-fields",
        ),
        pytest.param(
            line(chat_jid="+55 (11) 99999-9999"),
            {"id": "M1", "chat_jid": CHAT_JID},
            id="number-normalized",
        ),
        pytest.param(
            line(chat_jid="5511999999999@c.us"),
            {"id": "M1", "chat_jid": CHAT_JID},
            id="legacy-jid-normalized",
        ),
        pytest.param(
            line(instance="someone-else", text=None),
            {"id": "M1", "chat_jid": CHAT_JID, "text": None},
            id="instance-dropped-null-text-kept",
        ),
        pytest.param(
            line(reactions=[{"emoji": "👍"}], raw={"pushName": "Ana"}, starred=0),
            {
                "id": "M1",
                "chat_jid": CHAT_JID,
                "reactions": [{"emoji": "👍"}],
                "raw": {"pushName": "Ana"},
                "starred": 0,
            },
            id="extra-fields-kept",
        ),
    ],
)
def test_good_line(text: str, expected: dict[str, Any]) -> None:
    assert parse_one(text) == expected


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        pytest.param("2026-01-05T12:00:00+00:00", NOON, id="iso-utc-offset"),
        pytest.param("2026-01-05T14:00:00+02:00", NOON, id="iso-other-offset"),
        pytest.param("2026-01-05T12:00:00Z", NOON, id="iso-z"),
        pytest.param("2026-01-05T12:00:00", NOON, id="iso-naive-is-utc"),
        pytest.param("2026-01-05T12:00:00.250", NOON + timedelta(milliseconds=250), id="iso-ms"),
        pytest.param(NOON_UNIX, NOON, id="unix-int"),
        pytest.param(NOON_UNIX + 0.5, NOON + timedelta(milliseconds=500), id="unix-float"),
        pytest.param(0, datetime(1970, 1, 1, tzinfo=UTC), id="unix-epoch"),
        pytest.param(None, None, id="null"),
    ],
)
def test_timestamp(timestamp: object, expected: datetime | None) -> None:
    parsed = parse_one(line(timestamp=timestamp))["timestamp"]
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None  # always aware, so the driver stores the right instant


def test_offset_is_kept_as_the_same_instant() -> None:
    parsed = parse_one(line(timestamp="2026-01-05T09:00:00-03:00"))["timestamp"]
    assert parsed.utcoffset() == timezone(timedelta(hours=-3)).utcoffset(None)
    assert parsed == NOON


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("not json", "Expecting value", id="not-json"),
        pytest.param("{", "Expecting property name", id="truncated-json"),
        pytest.param("[1, 2]", "expected a JSON object", id="array"),
        pytest.param('"M1"', "expected a JSON object", id="string"),
        pytest.param("null", "expected a JSON object", id="null"),
        pytest.param(json.dumps({"chat_jid": CHAT_JID}), "id must be", id="id-missing"),
        pytest.param(line(id=123), "id must be a non-empty string", id="id-int"),
        pytest.param(line(id="  "), "id must be a non-empty string", id="id-blank"),
        pytest.param(line(id="X" * 129), "at most 128 characters", id="id-too-long"),
        pytest.param(json.dumps({"id": "M1"}), "chat_jid must be", id="chat-missing"),
        pytest.param(line(chat_jid=""), "chat_jid must be a non-empty string", id="chat-empty"),
        pytest.param(line(chat_jid=5511999999999), "chat_jid must be", id="chat-int"),
        pytest.param(line(chat_jid="hello"), "Invalid number", id="chat-not-a-number"),
        pytest.param(line(chat_jid="1@example.com"), "unsupported JID server", id="chat-server"),
        pytest.param(line(from_me=1), "from_me must be true or false", id="from-me-int"),
        pytest.param(line(from_me="true"), "from_me must be true or false", id="from-me-str"),
        pytest.param(line(from_me=None), "from_me must be true or false", id="from-me-null"),
        pytest.param(line(timestamp=True), "timestamp must be", id="timestamp-bool"),
        pytest.param(line(timestamp=[]), "timestamp must be", id="timestamp-list"),
        pytest.param(line(timestamp={"$date": NOON_UNIX}), "timestamp must be", id="ts-extjson"),
        pytest.param(line(timestamp="yesterday"), "Invalid isoformat", id="timestamp-words"),
        pytest.param(line(timestamp=""), "Invalid isoformat", id="timestamp-empty"),
        pytest.param(line(timestamp="2026-01-05T12:00:00+25:00"), "", id="timestamp-offset"),
        pytest.param(line(timestamp=10**30), "", id="timestamp-huge-int"),
        pytest.param(line(timestamp=1e20), "", id="timestamp-huge-float"),
        pytest.param(line(timestamp=-(10**20)), "", id="timestamp-huge-negative"),
        pytest.param(line()[:-1] + ', "timestamp": 1e400}', "", id="timestamp-infinity"),
        pytest.param(line()[:-1] + ', "timestamp": NaN}', "NaN", id="timestamp-nan"),
        pytest.param(line(text=5), "text must be a string", id="text-int"),
        pytest.param(line(text=["hi"]), "text must be a string", id="text-list"),
    ],
)
def test_bad_line(text: str, reason: str) -> None:
    with pytest.raises(InvalidLine, match=r"^line 1: ") as caught:
        parse_messages([text])
    assert reason in str(caught.value)


def test_unstorable_lines_are_refused_not_crashed_on() -> None:
    # Deeply nested JSON overflows the decoder's recursion, a lone surrogate escape cannot be
    # encoded to BSON, and empty field names or ones with "$", "." or NUL (at any depth)
    # cannot be $set as they are: each is a line error, not a traceback.
    nested = line()[:-1] + ', "raw": ' + "[" * 100_000 + "]" * 100_000 + "}"
    surrogate = line()[:-1] + ', "text": "\\ud800"}'
    odd_names = [line(**{name: 1}) for name in ["$set", "a.b", "", "nul\x00"]]
    for text in [nested, surrogate, *odd_names, line(raw={"$date": 1}), line(id="\ud800")]:
        with pytest.raises(InvalidLine, match=r"^line 1: "):
            parse_messages([text])


def test_database_id_is_dropped() -> None:
    # mongoexport writes the database's own _id; the importing database makes its own.
    message = parse_one(line(_id={"$oid": "65a1b2c3d4e5f60718293a4b"}))
    assert "_id" not in message


def test_blank_lines_are_skipped_and_line_numbers_stay_physical() -> None:
    lines = ["\n", line(id="A") + "\n", "   \n", "\t\n", line(id="B") + "\n", ""]
    assert [message["id"] for message in parse_messages(lines)] == ["A", "B"]
    with pytest.raises(InvalidLine, match=r"^line 5: from_me must be true or false$"):
        parse_messages(["", line(id="A"), "  ", line(id="B"), line(id="C", from_me="no")])


def test_empty_input_is_no_messages() -> None:
    assert parse_messages([]) == []
    assert parse_messages(["", "  \n"]) == []


def test_first_bad_line_is_reported() -> None:
    with pytest.raises(InvalidLine, match=r"^line 2: "):
        parse_messages([line(id="A"), "oops", line(id="C", text=5)])


def test_invalid_line_is_a_value_error() -> None:
    # The CLI relies on it being a ValueError with the line number in its message.
    error = InvalidLine(7, "bad")
    assert isinstance(error, ValueError)
    assert str(error) == "line 7: bad"
