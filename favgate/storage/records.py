"""Plain records read from and written to MongoDB.

They carry no driver types, so the layers above never see a BSON document.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class FavoriteType(enum.Enum):
    CHAT = "chat"
    MESSAGE = "message"


class InstanceStatus(enum.Enum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class Instance:
    name: str
    account: str
    status: InstanceStatus

    @property
    def connected(self) -> bool:
        return self.status is InstanceStatus.CONNECTED

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Instance:
        return cls(name=doc["name"], account=doc["account"], status=InstanceStatus(doc["status"]))


@dataclass(frozen=True, slots=True)
class Caller:
    """Whom a token belongs to: a whole account, or one instance of it."""

    account: str
    instance: str | None = None

    def can_reach(self, instance: Instance) -> bool:
        if instance.account != self.account:
            return False
        return self.instance is None or self.instance == instance.name


@dataclass(frozen=True, slots=True)
class Message:
    instance: str
    id: str
    chat_jid: str
    from_me: bool
    timestamp: datetime | None
    text: str | None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Message:
        return cls(
            instance=doc["instance"],
            id=doc["id"],
            chat_jid=doc["chat_jid"],
            from_me=bool(doc.get("from_me", False)),
            timestamp=doc.get("timestamp"),
            text=doc.get("text"),
        )


@dataclass(frozen=True, slots=True)
class FavoriteTarget:
    """What a favorite is recorded on: a chat, or one message of a chat."""

    type: FavoriteType
    chat_jid: str
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Favorite:
    id: str
    instance: str
    target: FavoriteTarget
    favorite: bool
    favorited_at: datetime
    updated_at: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Favorite:
        target = FavoriteTarget(
            type=FavoriteType(doc["type"]),
            chat_jid=doc["chat_jid"],
            message_id=doc.get("message_id"),
        )
        return cls(
            id=str(doc["_id"]),
            instance=doc["instance"],
            target=target,
            favorite=doc["favorite"],
            favorited_at=doc["favorited_at"],
            updated_at=doc["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class FavoriteFilter:
    """Which current favorites of an instance a listing returns."""

    instance: str
    type: FavoriteType | None = None
    chat_jid: str | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page of favorites starts: after this (favorited_at, id) in newest-first order."""

    favorited_at: datetime
    id: str
