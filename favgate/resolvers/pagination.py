"""Opaque, stable cursors for newest-first listings, and the page size rule."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from favgate.errors import BadRequest, InvalidCursor
from favgate.storage import Favorite, Position

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Cursors are about 60 characters; far longer input is refused before it is decoded.
_MAX_CURSOR_LENGTH = 256
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def page_size(first: int | None) -> int:
    """``first`` capped at ``MAX_PAGE_SIZE``; negative sizes are refused."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0:
        raise BadRequest("first must not be negative")
    return min(first, MAX_PAGE_SIZE)


def encode_cursor(favorite: Favorite) -> str:
    # The sort key itself, so a cursor stays valid whatever is added or removed around it.
    # Integer arithmetic: float seconds times 1000 can fall a millisecond short.
    millis = (favorite.favorited_at - _EPOCH) // timedelta(milliseconds=1)
    # The JSON [millis, "id"], written out: json.dumps costs more than the rest of a
    # listing's per-edge work. An id is 24 hex digits, which need no escaping.
    payload = f'[{millis},"{favorite.id}"]'.encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        if len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError(cursor)
        padded = cursor + "=" * (-len(cursor) % 4)
        millis, favorite_id = json.loads(base64.urlsafe_b64decode(padded))
        if type(millis) is not int:  # not a string, float or bool that int() would take
            raise TypeError(millis)
        seconds, remainder = divmod(millis, 1000)
        favorited_at = datetime.fromtimestamp(seconds, tz=UTC) + timedelta(milliseconds=remainder)
        if not isinstance(favorite_id, str) or not ObjectId.is_valid(favorite_id):
            raise ValueError(favorite_id)
    except (binascii.Error, ValueError, TypeError, OverflowError, OSError):
        raise InvalidCursor() from None
    return Position(favorited_at=favorited_at, id=favorite_id)
