"""Who a request is, decided once: the typed identity the REST route, the GraphQL
transport and the limiter read.

``IdentityMiddleware`` runs for the requests of the two APIs (``favgate.apis.Api.of``): it
reads the token once (``token`` header, else ``Authorization``), hashes it and looks its
owner up (cached, see ``favgate.storage.caching``), and leaves an ``Identity`` in
``scope["auth"]`` (``request.auth`` in Starlette), read with ``identity_of``. It refuses
nothing itself: where a token is checked, and what a request without one gets, is each
API's rule (the REST contract checks the instance name first; GraphQL refuses before it
parses). A database outage during the lookup is refused here, in the API's shape.

The identity carries the request's ``Budget``: the token's rate-limit budget when the
token is known, else one per client address (for the little an anonymous request may do).
Whatever the request was charged, the response carries the budget as it stands after the
last charge (``favgate.ratelimit`` tells the whole story).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from favgate.apis import Api, header_fields, public_refusal
from favgate.auth import MAX_TOKEN_LENGTH, hash_token, token_from_headers
from favgate.ratelimit import Budget, Limiter
from favgate.storage import Caller, Storage


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller behind a request: the token's owner, or None (no token, or not one we
    know). ``budget`` is what the request's work is charged to."""

    caller: Caller | None
    budget: Budget = field(compare=False)

    @property
    def authenticated(self) -> bool:
        return self.caller is not None


def identity_of(connection: HTTPConnection) -> Identity:
    identity = connection.scope.get("auth")
    assert isinstance(identity, Identity), "IdentityMiddleware runs before every API route"
    return identity


_TOKEN_FIELDS = frozenset({b"token", b"authorization"})


def token_key(scope: Scope) -> str | None:
    """The key of a request's token: its hash. None without a plausible token."""
    token = token_from_headers(header_fields(scope, _TOKEN_FIELDS))
    if token is None or len(token) > MAX_TOKEN_LENGTH:
        return None
    return hash_token(token)


def client_key(scope: Scope) -> str:
    """The budget key of a request without a known token: its client's address."""
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


class IdentityMiddleware:
    """Authenticates each request of the two APIs once (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = Api.of(scope)
        if api is None:
            await self.app(scope, receive, send)
            return
        try:
            identity = await self._identify(scope)
        except Exception as exc:
            await public_refusal(api, exc, scope)(scope, receive, send)
            return
        scope["auth"] = identity
        await self.app(scope, receive, _with_budget(send, identity.budget))

    async def _identify(self, scope: Scope) -> Identity:
        state = scope["state"]
        storage: Storage = state["storage"]
        limiter: Limiter = state["limiter"]
        key = token_key(scope)
        caller = None if key is None else await storage.directory.find_caller(key)
        if caller is None:
            return Identity(None, Budget(limiter, client_key(scope)))
        assert key is not None
        return Identity(caller, Budget(limiter, key))


def _with_budget(send: Send, budget: Budget) -> Send:
    """``send``, adding the budget after the last charge to the response's head."""

    async def send_with_budget(message: Message) -> None:
        if message["type"] == "http.response.start" and budget.last is not None:
            # Appended as they are: the responses set none of these fields themselves.
            message["headers"] = [*message.get("headers", ()), *budget.last.raw_headers()]
        await send(message)

    return send_with_budget
