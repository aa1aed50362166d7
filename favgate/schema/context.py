"""The per-request GraphQL context: the storage, what the caller may reach, and loaders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from strawberry.dataloader import DataLoader

from favgate.auth import Access
from favgate.storage import Caller, Message, Storage

MessageKey = tuple[str, str]  # (instance, message id)


@dataclass(slots=True)
class Context:
    storage: Storage
    access: Access
    # Per request, so that one query's messages are fetched together and never cached
    # across requests.
    messages: DataLoader[MessageKey, Message | None]
    # A WebSocket's connection_init payload; Strawberry sets it before on_ws_connect.
    connection_params: dict[str, Any] | None = None
    # FAVGATE_WEBHOOK_ALLOW_PRIVATE, for addWebhook (favgate.webhooks.addresses).
    webhook_allow_private: bool = False


def build_context(
    storage: Storage,
    token: str | None,
    *,
    cache_messages: bool = True,
    caller: Caller | None = None,
) -> Context:
    return Context(
        storage=storage,
        access=Access(storage, token, caller),
        messages=DataLoader(load_fn=_message_loader(storage), cache=cache_messages),
    )


def _message_loader(
    storage: Storage,
) -> Callable[[Sequence[MessageKey]], Awaitable[list[Message | None]]]:
    async def load(keys: Sequence[MessageKey]) -> list[Message | None]:
        ids_by_instance: dict[str, list[str]] = defaultdict(list)
        for instance, message_id in keys:
            ids_by_instance[instance].append(message_id)
        found: dict[MessageKey, Message] = {}
        for instance, ids in ids_by_instance.items():
            for message_id, message in (await storage.messages.get_many(instance, ids)).items():
                found[instance, message_id] = message
        return [found.get(key) for key in keys]

    return load
