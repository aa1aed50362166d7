"""The per-request GraphQL context and the ASGI view that builds it."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.dataloader import DataLoader
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from favgate import graphiql
from favgate.auth import Access, token_from_headers
from favgate.errors import RateLimited
from favgate.storage import Caller, Message, Storage

if TYPE_CHECKING:
    from favgate.ratelimit import RateLimiter

MessageKey = tuple[str, str]  # (instance, message id)

# The WebSocket speaks graphql-transport-ws only: the legacy graphql-ws protocol (of
# subscriptions-transport-ws) is deprecated by its authors, and one protocol is one less
# set of rules to secure.
SUBSCRIPTION_PROTOCOLS = (GRAPHQL_TRANSPORT_WS_PROTOCOL,)
_LONG_NUMBER = re.compile(rb"[0-9]{19}")


@dataclass(slots=True)
class Context:
    storage: Storage
    access: Access
    # Per request, so that one query's messages are fetched together and never cached
    # across requests.
    messages: DataLoader[MessageKey, Message | None]
    # The limiter that charged this HTTP request and the key it charged (favgate.ratelimit);
    # None when nothing was charged (no known token, or a WebSocket).
    rate_limit: tuple[RateLimiter, str] | None = None
    # A WebSocket's connection_init payload; Strawberry sets it before on_ws_connect.
    connection_params: dict[str, Any] | None = None
    # FAVGATE_WEBHOOK_ALLOW_PRIVATE, for addWebhook (favgate.webhooks.addresses).
    webhook_allow_private: bool = False

    async def charge(self, cost: int) -> None:
        """Spend ``cost`` more units of the request's budget, for an operation worth more
        than one request; ``RateLimited`` when they are not all left."""
        if self.rate_limit is None or cost <= 0:
            return
        limiter, key = self.rate_limit
        if not (await limiter.acquire(key, cost=cost)).admitted:
            raise RateLimited()


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


class GraphQLView(GraphQL[Context, None]):
    """Strawberry's ASGI view with favgate's typed context."""

    def decode_json(self, data: str | bytes) -> object:
        # orjson reads a request body several times faster than json. What it refuses (a
        # NaN, UTF-16, a lone surrogate) goes to json, which decides as it always did; so
        # do bodies with 19 digits in a row, as orjson reads an integer past 64 bits as a
        # float where json keeps it exact.
        if isinstance(data, bytes) and _LONG_NUMBER.search(data) is None:
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
        return super().decode_json(data)

    def encode_json(self, data: object) -> str | bytes:
        # orjson encodes a page of favorites several times faster than json. It refuses
        # what json escapes (a lone surrogate echoed in an error), hence the fallback. A
        # str, not bytes: Strawberry sends bytes over a WebSocket as binary frames.
        try:
            return orjson.dumps(data).decode()
        except orjson.JSONEncodeError:
            return super().encode_json(data)

    async def render_graphql_ide(self, request: Request) -> Response:
        # favgate's own page, every script and stylesheet served locally (no CDN).
        return graphiql.page_response()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        storage, token = request.state.storage, token_from_headers(request.headers)
        if isinstance(request, WebSocket):
            # One context serves the whole connection: a message cache would live as long.
            return build_context(storage, token, cache_messages=False)
        context = build_context(storage, token, caller=getattr(request.state, "caller", None))
        context.rate_limit = _rate_limit(request.state)
        settings = getattr(request.state, "settings", None)
        context.webhook_allow_private = getattr(settings, "webhook_allow_private", False)
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A token in the ``connection_init`` payload wins over the upgrade's headers.

        Browsers cannot set headers on a WebSocket, so the payload is where they put it:
        ``{"token": ...}`` (or ``{"Authorization": "Bearer ..."}``). It is checked, like a
        header token, by each subscription.
        """
        params = {key.lower(): value for key, value in (context.connection_params or {}).items()}
        if "token" in params or "authorization" in params:
            fields = {key: value for key, value in params.items() if isinstance(value, str)}
            context.access = Access(context.storage, token_from_headers(fields))
        return UnsetType()  # acknowledge with no payload (UNSET itself is typed Any)


def _rate_limit(state: State) -> tuple[RateLimiter, str] | None:
    limiter = getattr(state, "rate_limiter", None)
    key = getattr(state, "rate_limit_key", None)
    return None if limiter is None or key is None else (limiter, key)
