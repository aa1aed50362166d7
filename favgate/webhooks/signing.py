"""Signing deliveries as the Standard Webhooks specification says (standardwebhooks.com).

Each delivery carries ``webhook-id`` (the event's id, the same on every retry: receivers
deduplicate by it), ``webhook-timestamp`` (seconds since the epoch, of this attempt) and
``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, keyed with the endpoint's
secret, of ``<id>.<timestamp>.<body>``. The secret is ``whsec_`` and 32 random bytes in
base64, the form the ``standardwebhooks`` libraries take as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{base64.b64encode(digest).decode()}",
    }
