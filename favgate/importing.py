"""Reading messages from JSON Lines for ``favgate messages import``.

Each line is one message object as the upstream engine would store it: ``id`` and
``chat_jid`` are required; ``chat_jid_alt`` (the chat's other identity: the phone-number
JID of a LID chat, or the LID of a phone-number chat), ``from_me``, ``timestamp`` (ISO
8601 or Unix seconds) and ``text`` are optional; any other field is kept as it is, except
``instance`` (favgate sets it) and ``_id`` (the database's own). Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from favgate.errors import FavgateError
from favgate.resolvers.favorites import MAX_MESSAGE_ID_LENGTH
from favgate.resolvers.jids import normalize_number

_DROPPED_FIELDS = {"instance", "_id"}


class InvalidLine(ValueError):
    def __init__(self, line_number: int, reason: str) -> None:
        super().__init__(f"line {line_number}: {reason}")


def parse_messages(lines: Iterable[str]) -> list[dict[str, Any]]:
    messages = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            messages.append(parse_message(json.loads(line)))
        # RecursionError: JSON nested too deeply for the decoder or for _check_storable.
        except (ValueError, OverflowError, OSError, RecursionError, FavgateError) as exc:
            raise InvalidLine(number, str(exc)) from None
    return messages


def parse_message(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    message = {key: value for key, value in data.items() if key not in _DROPPED_FIELDS}
    message["id"] = _message_id(data.get("id"))
    chat_jid = data.get("chat_jid")
    if not isinstance(chat_jid, str) or not chat_jid:
        raise ValueError("chat_jid must be a non-empty string")
    message["chat_jid"] = normalize_number(chat_jid)
    if "chat_jid_alt" in data:
        message["chat_jid_alt"] = _chat_jid_alt(data["chat_jid_alt"])
    # Fields left out are left alone on re-import, like any field favgate does not know.
    if "from_me" in data:
        message["from_me"] = _from_me(data["from_me"])
    if "timestamp" in data:
        message["timestamp"] = _timestamp(data["timestamp"])
    if not isinstance(data.get("text"), str | None):
        raise ValueError("text must be a string")
    _check_storable(message)
    return message


def _message_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("id must be a non-empty string")
    if len(value) > MAX_MESSAGE_ID_LENGTH:
        raise ValueError(f"id must be at most {MAX_MESSAGE_ID_LENGTH} characters")
    return value


def _chat_jid_alt(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError("chat_jid_alt must be a non-empty string or null")
    return normalize_number(value, "chat_jid_alt")


def _from_me(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("from_me must be true or false")
    return value


def _timestamp(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError("timestamp must be an ISO 8601 string or Unix seconds")


def _check_storable(value: object) -> None:
    """Refuse what MongoDB cannot $set as sent: odd field names, lone surrogates."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("strings must not contain lone surrogates") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            if not key or key.startswith("$") or "." in key or "\x00" in key:
                raise ValueError(f"invalid field name {key!r}: empty, or with $, . or NUL")
            _check_storable(key)
            _check_storable(item)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item)
