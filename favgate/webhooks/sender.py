"""One delivery attempt: a signed POST to the endpoint, answered 2xx or not.

The client follows no redirect (a 3xx is a failure: following it would take the
delivery to a URL that was never checked) and ignores proxy variables (the connection
must go to the address checked). Each attempt gives up after ``TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from favgate.errors import FavgateError
from favgate.storage import Delivery, Webhook
from favgate.webhooks import addresses
from favgate.webhooks.signing import signature_headers

TIMEOUT_SECONDS = 10.0
USER_AGENT = "favgate-webhooks"


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=False,
        timeout=TIMEOUT_SECONDS,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


async def send(
    client: httpx.AsyncClient, webhook: Webhook, delivery: Delivery, allow_private: bool
) -> str | None:
    """Make the attempt; None when the endpoint took it (2xx), else why not, in a few
    words fit for ``favgate webhook list``. The whole attempt, name resolution included,
    ends within ``TIMEOUT_SECONDS`` (httpx's timeout bounds each read, not the total)."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            return await _attempt(client, webhook, delivery, allow_private)
    except (TimeoutError, httpx.TimeoutException):
        return f"timed out after {TIMEOUT_SECONDS:g} s"
    except httpx.HTTPError as exc:
        return f"connection failed ({type(exc).__name__})"


async def _attempt(
    client: httpx.AsyncClient, webhook: Webhook, delivery: Delivery, allow_private: bool
) -> str | None:
    try:
        destination = await addresses.resolve(webhook.url, allow_private, delivery.attempts - 1)
    except FavgateError as exc:  # refused or unresolvable now: retried like any failure
        return exc.message
    headers = {
        "content-type": "application/json",
        **destination.headers,
        **signature_headers(webhook.secret, delivery.event, int(time.time()), delivery.body),
    }
    # Streamed and never read: a receiver cannot make the gateway hold a large answer.
    async with client.stream(
        "POST",
        destination.url,
        content=delivery.body,
        headers=headers,
        extensions=destination.extensions,
    ) as response:
        status = response.status_code
    return None if 200 <= status < 300 else f"answered HTTP {status}"
