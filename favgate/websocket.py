"""The WebSocket on ``/graphql``: graphql-transport-ws, hardened against its clients.

Strawberry speaks the protocol; this module adds favgate's rules to it, through the
view's hooks (its handler and adapter classes, ``get_context``, ``on_ws_connect``):

- **Message size.** ``favgate serve`` has uvicorn refuse a message over
  ``FAVGATE_MAX_BODY_BYTES`` while reading its frame header (close 1009), so it is never
  buffered whole (``favgate.cli``). Behind another server, the view refuses it too
  (1009), only after the server has read it.
- **connection_init first, and authenticated.** Anything else before it closes the
  socket: 4401 for a well-formed message, 4400 for a malformed one. The token (in the
  payload, else the upgrade's headers) is checked once, at ``connection_init``: a missing
  or unknown one closes with 4403. Nothing waits longer than ``INIT_TIMEOUT`` for it (4408).
- **Malformed messages close with 4400**, whatever their shape (not JSON, not an object,
  an unknown type, a subscribe without a string query...), never with a traceback: only
  well-formed messages reach Strawberry. A subscribe whose text is not valid Unicode (a
  lone surrogate) is answered ``BAD_USER_INPUT``, and the connection stays open.
- **Subscriptions cost and are capped.** A subscription start is charged one unit of the
  token's rate limit (``RATE_LIMITED`` when spent), and a token holds at most
  ``FAVGATE_MAX_SUBSCRIPTIONS_PER_TOKEN`` open subscriptions in each process, besides
  ``FAVGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION`` per connection (``TOO_MANY_SUBSCRIPTIONS``).
  Every refusal is an ``error`` message carrying ``extensions.code``.

Nothing a client does here is logged, besides uvicorn's one line per connection (which
``favgate.logs.WebSocketLines`` keeps to one, without its query string).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, OrderedDict
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from graphql import GraphQLError, GraphQLSyntaxError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types.unset import UnsetType

from favgate.auth import Access, hash_token, token_from_headers
from favgate.errors import (
    BadRequest,
    FavgateError,
    InvalidToken,
    TooManySubscriptions,
    public_error,
)
from favgate.ratelimit import Budget, Limiter
from favgate.schema import Context, Schema
from favgate.schema.context import build_context

logger = logging.getLogger(__name__)

# graphql-transport-ws only: the legacy graphql-ws protocol (of subscriptions-transport-ws)
# is deprecated by its authors, and one protocol is one less set of rules to secure.
SUBSCRIPTION_PROTOCOLS = (GRAPHQL_TRANSPORT_WS_PROTOCOL,)
# Long enough for any client to send connection_init; a silent socket is closed sooner
# than Strawberry's default minute.
INIT_TIMEOUT = timedelta(seconds=10)
MESSAGE_TOO_BIG = 1009  # RFC 6455, as the protocol layer answers it
# The protocol's message types, and the ids it echoes (in close reasons too, which hold
# at most 123 bytes): visible ASCII, as graphql-ws clients' uuids are.
_TYPES = frozenset({"connection_init", "ping", "pong", "subscribe", "complete"})
_OPERATION_ID = re.compile(r"[\x21-\x7e]{1,64}")
_MAX_CLOSE_REASON_BYTES = 123
# Encoded next payloads kept: the latest changes of every document in use.
SHARED_PAYLOADS = 64
# json.dumps(value, separators=(",", ":")), as Strawberry's view encodes, without building
# an encoder for each message (json.dumps does, given separators): a fan-out sends
# thousands at once.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@dataclass(slots=True)
class ConnectionContext(Context):
    """One connection's context: what ``connection_init`` needs to authenticate it."""

    upgrade_token: str | None = field(default=None, repr=False)
    limiter: Limiter | None = None
    # The token's budget, once connection_init has authenticated the connection.
    budget: Budget | None = None


class OpenSubscriptions:
    """The open subscriptions of each token (by its hash) in this process, capped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def take(self, key: str) -> bool:
        """Count one more for ``key``; False, counting nothing, when it has ``limit``."""
        if self._open[key] >= self.limit:
            return False
        self._open[key] += 1
        return True

    def release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]


def _token(params: Mapping[str, object], upgrade_token: str | None) -> str | None:
    fields = {key.lower(): value for key, value in params.items()}
    if "token" not in fields and "authorization" not in fields:
        return upgrade_token
    # A token that is no string is no token, rather than the headers' one.
    return token_from_headers({k: v for k, v in fields.items() if isinstance(v, str)})


class Adapter(ASGIWebSocketAdapter):
    """Reads messages under the size cap and decodes them; closes with a reason that fits."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object]:
        limit = cast(WebSocketView, self.view).max_message_bytes
        while self.ws.application_state != WebSocketState.DISCONNECTED:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                raise NonTextMessageReceived()
            if len(text) > limit or len(text.encode()) > limit:
                await self.close(MESSAGE_TOO_BIG, "Message too big")
                return
            yield _decode(text)

    async def send_json(self, message: Mapping[str, object]) -> None:
        text = cast(WebSocketView, self.view).payloads.encode(message)
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        # Strawberry puts client text in some reasons (a syntax error's message); a close
        # frame holds 123 bytes of UTF-8 at most.
        fitting = reason.encode(errors="replace")[:_MAX_CLOSE_REASON_BYTES]
        await super().close(code, fitting.decode(errors="ignore"))


class SharedPayloads:
    """Messages encoded as Strawberry encodes them (compact JSON), the ``next`` payloads
    of a shared result once: subscriptions of one document receive the same data object
    for a change (``favgate.schema.shared_events.SharedEvents``), so its text is made once and
    each subscriber's message only wraps its own id around it, byte for byte what
    ``json.dumps`` of the whole message gives (``tests/test_fanout.py``).

    Keyed by the data's ``id``: each entry holds its data, so that the id cannot be reused
    while it is here; results are never changed once sent.
    """

    def __init__(self, size: int = SHARED_PAYLOADS) -> None:
        self.size = size
        self._texts: OrderedDict[int, tuple[object, str]] = OrderedDict()

    def encode(self, message: Mapping[str, object]) -> str:
        payload = message.get("payload")
        if (
            message.get("type") != "next"
            or list(message) != ["id", "type", "payload"]
            or not isinstance(payload, dict)
            or list(payload) != ["data"]
        ):
            return _compact(message)
        return f'{{"id":{_compact(message["id"])},"type":"next","payload":{self._shared(payload)}}}'

    def _shared(self, payload: dict[str, object]) -> str:
        data = payload["data"]
        entry = self._texts.get(id(data))
        if entry is None:
            entry = self._texts[id(data)] = (data, _compact(payload))
            if len(self._texts) > self.size:
                self._texts.popitem(last=False)
        return entry[1]


def _compact(value: object) -> str:
    return _COMPACT.encode(value)


def _decode(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise NonJsonMessageReceived() from None


class Handler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, with favgate's rules in front."""

    async def handle_message(self, message: Message) -> None:
        if not _well_formed(message):
            await self.handle_invalid_message("Invalid message")
        elif message["type"] != "connection_init" and not self.connection_init_received:
            await self.websocket.close(4401, "Unauthorized")
        elif message["type"] != "subscribe" and _has_lone_surrogate(message):
            await self.handle_invalid_message("Invalid Unicode")
        else:
            await super().handle_message(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if message.get("payload") is None:  # the protocol allows null; Strawberry does not
            message = {"type": "connection_init", "payload": {}}
        try:
            await super().handle_connection_init(message)
        except Exception as exc:  # the database is away while authenticating
            public = public_error(exc)
            if public is None:
                raise
            logger.warning("WebSocket refused: %s", public.message)
            await self.websocket.close(1011, public.message)

    async def handle_task_exception(self, error: Exception) -> None:
        # Strawberry's ParserCache parses in its hook, so a syntax error (a document over
        # FAVGATE_MAX_QUERY_TOKENS too) escapes the operation instead of becoming its error:
        # the client's mistake all the same, closed as Strawberry closes syntax errors.
        if isinstance(error, GraphQLSyntaxError):
            await self.websocket.close(4400, error.message)
            return
        await super().handle_task_exception(error)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged or message["id"] in self.operations:
            await super().handle_subscribe(message)  # closes 4401 or 4409, as it should
            return
        refusal = await self._admit(message)
        if refusal is not None:
            await self._refuse(message["id"], refusal)

    async def _admit(self, message: SubscribeMessage) -> FavgateError | None:
        """Open the subscription if its text, the caps and the budget allow; else why not."""
        if _has_lone_surrogate(message["payload"]):
            return BadRequest("Invalid subscribe payload: text must be valid Unicode")
        limit = self.max_subscriptions_per_connection
        if limit is not None and len(self.operations) >= limit:
            return TooManySubscriptions()
        budget = cast(ConnectionContext, self.context).budget
        assert budget is not None  # set when the connection was acknowledged
        key = budget.key
        subscriptions = cast(WebSocketView, self.view).open_subscriptions
        if not subscriptions.take(key):
            return TooManySubscriptions("Subscription limit reached for this token")
        try:
            await budget.charge(1)  # a subscription start costs 1 (favgate.schema.cost)
            await super().handle_subscribe(message)
        except Exception as exc:
            subscriptions.release(key)
            public = public_error(exc)
            if public is None:
                raise
            return public
        # Whatever ends the subscription ends its task: complete, error, disconnect.
        task = self.operations[message["id"]].task
        assert task is not None
        task.add_done_callback(lambda _: subscriptions.release(key))
        return None

    async def _refuse(self, operation_id: str, error: FavgateError) -> None:
        formatted = GraphQLError(error.message, extensions=error.extensions).formatted
        await self.send_message({"id": operation_id, "type": "error", "payload": [formatted]})


class WebSocketView(GraphQL[Context, None]):
    """Strawberry's view for the WebSocket route only (HTTP goes elsewhere)."""

    graphql_transport_ws_handler_class = Handler
    websocket_adapter_class = Adapter

    def __init__(
        self,
        schema: Schema,
        *,
        max_message_bytes: int,
        max_subscriptions_per_connection: int,
        max_subscriptions_per_token: int,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=SUBSCRIPTION_PROTOCOLS,
            connection_init_wait_timeout=INIT_TIMEOUT,
            max_subscriptions_per_connection=max_subscriptions_per_connection,
        )
        self.max_message_bytes = max_message_bytes
        self.open_subscriptions = OpenSubscriptions(max_subscriptions_per_token)
        self.payloads = SharedPayloads()

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.state
        # One context serves the whole connection: a message cache would live as long.
        context = build_context(state.storage, None, cache_messages=False)
        return ConnectionContext(
            storage=context.storage,
            access=context.access,
            messages=context.messages,
            upgrade_token=token_from_headers(request.headers),
            limiter=state.limiter,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate the connection, once; ``ConnectionRejectionError`` closes it 4403.

        Browsers cannot set headers on a WebSocket, so the payload is where they put the
        token: ``{"token": ...}`` (or ``{"Authorization": "Bearer ..."}``); it wins over
        the upgrade's headers.
        """
        assert isinstance(context, ConnectionContext)
        token = _token(context.connection_params or {}, context.upgrade_token)
        access = Access(context.storage, token)
        try:
            await access.caller()
        except InvalidToken:
            raise ConnectionRejectionError() from None
        assert token is not None and context.limiter is not None  # a caller was found
        context.access = access
        context.budget = Budget(context.limiter, hash_token(token))
        return UnsetType()  # acknowledge with no payload (UNSET itself is typed Any)


def _well_formed(message: object) -> bool:
    """Whether ``message`` has the shape the protocol gives its type."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return False
    kind, payload = message["type"], message.get("payload")
    if kind not in _TYPES:
        return False
    if kind in ("subscribe", "complete") and not _operation_id(message.get("id")):
        return False
    if kind == "subscribe":
        return isinstance(payload, dict) and _subscribe_payload(payload)
    return payload is None or isinstance(payload, dict)


def _operation_id(value: object) -> bool:
    return isinstance(value, str) and _OPERATION_ID.fullmatch(value) is not None


def _subscribe_payload(payload: dict[str, Any]) -> bool:
    optional = {"variables": dict, "operationName": str, "extensions": dict}
    return isinstance(payload.get("query"), str) and all(
        payload.get(name) is None or isinstance(payload[name], kind)
        for name, kind in optional.items()
    )


def _has_lone_surrogate(value: object) -> bool:
    """Whether any string in ``value`` (JSON data) cannot be encoded: JSON escapes can
    spell lone surrogates ("\\ud800"), which neither BSON nor UTF-8 can carry."""
    pending = [value]
    while pending:  # not recursive: the nesting is the client's
        item = pending.pop()
        if isinstance(item, str) and not item.isascii():
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
