"""Relay's global object identification: the ``Node`` interface and the ids it carries.

A node id is the URL-safe base64 (unpadded) of ``<type>:<key>``; for a favorite,
``Favorite:<its ObjectId in hex>``. The key is the record's ``_id``: stable for the
record's life (records are never deleted, a change keeps the document) and found on the
``_id`` index. The id says nothing a client may rely on: it is opaque, and only its
exact spelling, as favgate wrote it, is read back. Anything else (another type, a bad
key, padding, stray characters) names nothing, and ``node`` answers null for it, as for
an unknown id or another tenant's: a client cannot tell the three apart.
"""

from __future__ import annotations

import base64
import binascii
import re

import strawberry

FAVORITE = "Favorite"
_OBJECT_ID = re.compile(r"[0-9a-f]{24}")
# A favorite's id is 46 characters; far longer input is refused before it is decoded.
_MAX_ID_LENGTH = 128


@strawberry.interface(description="An object that Query.node finds again by its id (Relay).")
class Node:
    id: strawberry.ID


def global_id(type_name: str, key: str) -> strawberry.ID:
    return strawberry.ID(
        base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("=")
    )


def favorite_key(node_id: str) -> str | None:
    """The record id in a favorite's node id; None if ``node_id`` is not one."""
    if len(node_id) > _MAX_ID_LENGTH or not node_id.isascii():
        return None
    try:
        decoded = base64.urlsafe_b64decode(node_id + "=" * (-len(node_id) % 4)).decode()
    except (binascii.Error, ValueError):  # bad base64, or bytes that are not UTF-8
        return None
    type_name, _, key = decoded.partition(":")
    if type_name != FAVORITE or not _OBJECT_ID.fullmatch(key):
        return None
    # The decoder skips characters outside its alphabet: only the canonical spelling counts.
    return key if global_id(FAVORITE, key) == node_id else None
