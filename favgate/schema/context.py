"""The per-request GraphQL context and the ASGI view that builds it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader

from favgate.auth import Access, token_from_headers
from favgate.storage import Message, Storage

MessageKey = tuple[str, str]  # (instance, message id)


@dataclass(slots=True)
class Context:
    storage: Storage
    access: Access
    # Per request, so that one query's messages are fetched together and never cached
    # across requests.
    messages: DataLoader[MessageKey, Message | None]


def build_context(storage: Storage, token: str | None) -> Context:
    return Context(
        storage=storage,
        access=Access(storage, token),
        messages=DataLoader(load_fn=_message_loader(storage)),
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


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with favgate's typed context."""

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return build_context(request.state.storage, token_from_headers(request.headers))
