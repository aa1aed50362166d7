"""Persisted documents: which GraphQL text a request runs, when it names it by hash.

Two modes, chosen by ``FAVGATE_TRUSTED_DOCUMENTS``:

- **Automatic persisted queries** (Apollo's protocol, the default). A request may carry
  ``extensions.persistedQuery = {"version": 1, "sha256Hash": h}``. With the hash alone,
  the text registered under it runs; an unknown hash answers ``PERSISTED_QUERY_NOT_FOUND``,
  and the client sends the text with its hash, which must match it. A text found valid
  is registered in MongoDB (``favgate.storage.documents``), shared by every replica, and
  cached in process, for its tenant (account) alone: whether a hash is known says nothing
  of another tenant's documents. A registration expires after a day; the client
  registers the document again when it next meets ``PERSISTED_QUERY_NOT_FOUND``. A
  hash-only GET is a short URL.
- **Trusted documents** (production). The setting names a JSON manifest
  ``{"<sha256>": "<document>"}``, as GraphQL Codegen's client preset or Relay's persisted
  queries emit it. Only those documents run, named by hash or sent as identical text;
  nothing is registered.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from favgate.config import ConfigError
from favgate.errors import (
    InvalidGraphQLRequest,
    PersistedQueryHashMismatch,
    PersistedQueryNotFound,
    UntrustedDocument,
)
from favgate.storage import Documents

_SHA256 = re.compile(r"[0-9a-f]{64}")
# Registered documents kept in process; each is at most a request body (64 KiB).
CACHE_SIZE = 512


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Resolved:
    """The text a request runs, and the key (tenant and hash) to register it under once it
    proves valid (None when there is nothing to register)."""

    text: str
    register: str | None = None


class PersistedDocuments:
    """The gateway's documents by hash: the trusted manifest, else Apollo's registry."""

    def __init__(self, trusted: Mapping[str, str] | None = None) -> None:
        self.trusted = None if trusted is None else dict(trusted)
        self._trusted_texts = None if trusted is None else set(trusted.values())
        self._cache: OrderedDict[str, str] = OrderedDict()

    async def resolve(
        self, store: Documents, tenant: str, query: str | None, extensions: Mapping[str, Any]
    ) -> Resolved | None:
        """The text to run; None when the request names none at all. Registered documents
        are ``tenant``'s own: whether a hash is known tells nothing of other tenants'."""
        wanted = requested_hash(extensions)
        if self.trusted is not None:
            return self._trusted(query, wanted)
        if wanted is None:
            return None if query is None else Resolved(query)
        key = f"{tenant}:{wanted}"
        if query is not None:
            if sha256(query) != wanted:
                raise PersistedQueryHashMismatch()
            return Resolved(query, register=None if key in self._cache else key)
        text = self._cache.get(key)
        if text is None:
            text = await store.get(key)
            if text is None:
                raise PersistedQueryNotFound()
            self._remember(key, text)
        return Resolved(text)

    async def register(self, store: Documents, resolved: Resolved, printed: str) -> None:
        """Register the document, ``printed`` without its comments and spacing: what a
        client pads a document with is not kept (registrations expire, see Documents)."""
        if resolved.register is not None:
            await store.put(resolved.register, printed)
            self._remember(resolved.register, printed)

    def _trusted(self, query: str | None, wanted: str | None) -> Resolved | None:
        assert self.trusted is not None and self._trusted_texts is not None
        if wanted is not None:
            text = self.trusted.get(wanted)
            if text is None:
                raise PersistedQueryNotFound()
            if query is not None and query != text:
                raise PersistedQueryHashMismatch()
            return Resolved(text)
        if query is None:
            return None
        if query not in self._trusted_texts:
            raise UntrustedDocument()
        return Resolved(query)

    def _remember(self, key: str, text: str) -> None:
        self._cache[key] = text
        self._cache.move_to_end(key)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)


def requested_hash(extensions: Mapping[str, Any]) -> str | None:
    """The hash of ``extensions.persistedQuery``, checked; None without one."""
    persisted = extensions.get("persistedQuery")
    if persisted is None:
        return None
    version = persisted.get("version") if isinstance(persisted, dict) else None
    if type(version) is not int or version != 1:  # true == 1 == 1.0 in Python; not in JSON
        raise InvalidGraphQLRequest("extensions.persistedQuery must have version 1")
    wanted = persisted.get("sha256Hash")
    if not isinstance(wanted, str) or not _SHA256.fullmatch(wanted):
        raise InvalidGraphQLRequest("extensions.persistedQuery.sha256Hash must be a SHA-256")
    return wanted


def load_manifest(path: Path) -> dict[str, str]:
    """A trusted documents manifest, checked whole at start-up: every key must be the
    SHA-256 of its document."""
    name = "FAVGATE_TRUSTED_DOCUMENTS"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or not manifest:
        raise ConfigError(f"{name}: {path} must hold a non-empty JSON object")
    for key, text in manifest.items():
        if not isinstance(text, str) or sha256(text) != key:
            raise ConfigError(f"{name}: {key!r} is not the SHA-256 of its document")
    return manifest
