"""Tokens: how they are made, hashed, read from a request and checked against an instance.

A token is shown once, when it is created, and stored only as its SHA-256 hash: a leak of
the database does not leak credentials. Tokens are high-entropy random strings, so a fast
unsalted hash is enough (there is nothing to brute-force), and it lets the database look
a token up by equality on an index.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping

from favgate.errors import InstanceNameRequired, InstanceNotFound, InvalidArgument, InvalidToken
from favgate.storage import Caller, Instance, Storage

# Tokens longer than this are refused before hashing: no legitimate token is near it.
MAX_TOKEN_LENGTH = 256
# A token the provider issued, adopted as it is (``--token-stdin``): long enough that an
# unsalted hash of it cannot be brute-forced, and one header value without spaces.
ADOPTED_TOKEN = re.compile(rf"[\x21-\x7e]{{16,{MAX_TOKEN_LENGTH}}}")


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def adopted_token(text: str) -> str:
    """The token in ``text`` (one line, as read from standard input), or InvalidArgument."""
    token = text.strip()
    if not ADOPTED_TOKEN.fullmatch(token):
        reason = f"expected 16 to {MAX_TOKEN_LENGTH} visible ASCII characters, without spaces"
        raise InvalidArgument("token", reason)
    return token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The token from ``token``, else ``Authorization`` (bare or ``Bearer <token>``)."""
    token = headers.get("token", "").strip()
    if not token:
        authorization = headers.get("authorization", "").strip()
        scheme, _, credentials = authorization.partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else authorization
    return token or None


class Access:
    """What one request's token may reach. Built per request; remembers the caller."""

    def __init__(self, storage: Storage, token: str | None, caller: Caller | None = None) -> None:
        self._storage = storage
        self._token = token
        # The token's owner, when the request has looked it up already (the rate limiter
        # does, to charge the token): not hashed and looked up a second time.
        self._caller = caller

    async def caller(self) -> Caller:
        """The token's owner; ``InvalidToken`` when it is missing or unknown."""
        if self._caller is None:
            self._caller = await self._find_caller()
        return self._caller

    async def instance(self, name: str | None) -> Instance:
        """The instance ``name`` if the token reaches it, checked in the contract's order.

        An instance that exists but belongs to someone else answers exactly like one that
        does not exist, so a token cannot probe other tenants' instance names.
        """
        if name is None or not name.strip():
            raise InstanceNameRequired()
        instance = await self.reachable(name)
        if instance is None:
            raise InstanceNotFound()
        return instance

    async def reachable(self, name: str) -> Instance | None:
        """The instance ``name`` if the token reaches it, else None, whether it exists or
        not; ``InvalidToken`` first, like every check."""
        caller = await self.caller()
        instance = await self._storage.directory.find_instance(name)
        return instance if instance is not None and caller.can_reach(instance) else None

    async def instances(self) -> list[Instance]:
        """Every instance the token reaches, by name: its account's, or its own one."""
        caller = await self.caller()
        if caller.instance is None:
            return await self._storage.directory.instances_of(caller.account)
        own = await self.reachable(caller.instance)
        return [] if own is None else [own]

    async def _find_caller(self) -> Caller:
        token = self._token
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken()
        caller = await self._storage.directory.find_caller(hash_token(token))
        if caller is None:
            raise InvalidToken()
        return caller
