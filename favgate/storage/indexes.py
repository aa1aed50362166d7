"""The indexes favgate needs, created at start-up (creating an existing index is a no-op)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

ACCOUNTS = "accounts"
INSTANCES = "instances"
MESSAGES = "messages"
FAVORITES = "favorites"
RATE_LIMITS = "rate_limits"
DOCUMENTS = "persisted_documents"
DOCUMENT_LIFETIME_SECONDS = 24 * 3600
WEBHOOKS = "webhooks"
WEBHOOK_DELIVERIES = "webhook_deliveries"
WEBHOOK_RELAY = "webhook_relay"

INDEXES: dict[str, list[IndexModel]] = {
    ACCOUNTS: [
        IndexModel([("name", ASCENDING)], unique=True, name="name_unique"),
        # A token hash identifies one account at most.
        IndexModel([("token_hashes", ASCENDING)], unique=True, name="token_hashes_unique"),
    ],
    INSTANCES: [
        IndexModel([("name", ASCENDING)], unique=True, name="name_unique"),
        IndexModel([("token_hashes", ASCENDING)], unique=True, name="token_hashes_unique"),
        IndexModel([("account", ASCENDING)], name="account"),
    ],
    MESSAGES: [
        IndexModel([("instance", ASCENDING), ("id", ASCENDING)], unique=True, name="id_unique"),
        # Chat identities (storage.chats): a $lookup is indexed when the index leads with
        # the looked-up field.
        IndexModel([("chat_jid", ASCENDING), ("instance", ASCENDING)], name="chat"),
        IndexModel([("chat_jid_alt", ASCENDING), ("instance", ASCENDING)], name="chat_alt"),
    ],
    FAVORITES: [
        # One record per target: concurrent identical requests cannot create two. The
        # message id comes before the chat so that a message is found by its id alone.
        IndexModel(
            [
                ("instance", ASCENDING),
                ("type", ASCENDING),
                ("message_id", ASCENDING),
                ("chat_jid", ASCENDING),
            ],
            unique=True,
            name="target_unique",
        ),
        # Listings: current favorites of an instance, newest first.
        IndexModel(
            [
                ("instance", ASCENDING),
                ("favorite", ASCENDING),
                ("favorited_at", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="current_newest_first",
        ),
        IndexModel(
            [
                ("instance", ASCENDING),
                ("favorite", ASCENDING),
                ("chat_jid", ASCENDING),
                ("favorited_at", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="current_by_chat_newest_first",
        ),
        IndexModel([("chat_jid", ASCENDING), ("instance", ASCENDING)], name="chat"),
    ],
    RATE_LIMITS: [
        # Idle keys disappear once their last hit has left the window (storage.ratelimits).
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"),
    ],
    DOCUMENTS: [
        # Registered persisted queries expire a day after registration (storage.documents).
        IndexModel(
            [("registered_at", ASCENDING)],
            expireAfterSeconds=DOCUMENT_LIFETIME_SECONDS,
            name="registered_at_ttl",
        ),
    ],
    WEBHOOKS: [IndexModel([("instance", ASCENDING)], name="instance")],
    WEBHOOK_DELIVERIES: [
        # The workers' claim: the pending delivery due soonest (storage.outbox).
        IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="due"),
        IndexModel([("webhook", ASCENDING), ("status", ASCENDING)], name="webhook_status"),
        # Finished deliveries (delivered or failed) are kept a while, then disappear.
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"),
    ],
}


async def ensure_indexes(database: Any) -> None:
    for collection, models in INDEXES.items():
        await database[collection].create_indexes(models)
