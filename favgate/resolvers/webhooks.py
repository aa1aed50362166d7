"""Webhook endpoints, managed by the CLI and by GraphQL alike.

An endpoint belongs to an instance: a caller manages the endpoints of the instances its
token reaches, and one it cannot reach answers exactly like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from favgate.errors import InvalidArgument, WebhookNotFound
from favgate.resolvers.validation import require_text
from favgate.storage import Caller, Instance, Storage, Webhook, WebhookStats
from favgate.webhooks import addresses
from favgate.webhooks.signing import generate_secret

MAX_URL_LENGTH = 2048
MAX_ID_LENGTH = 64
MAX_WEBHOOKS_PER_INSTANCE = 10


@dataclass(frozen=True, slots=True)
class WebhookStatus:
    webhook: Webhook
    stats: WebhookStats


async def add_webhook(
    storage: Storage, instance: Instance, url: str, allow_private: bool
) -> Webhook:
    """A new endpoint of ``instance``, its secret generated; ``url`` checked first."""
    url = require_text("url", url.strip(), MAX_URL_LENGTH)
    await addresses.resolve(url, allow_private)
    # Each change is sent to every endpoint: a bound on them bounds the work per change.
    if len(await storage.webhooks.of_instances([instance.name])) >= MAX_WEBHOOKS_PER_INSTANCE:
        raise InvalidArgument(
            "url", f"an instance has at most {MAX_WEBHOOKS_PER_INSTANCE} webhooks"
        )
    return await storage.webhooks.add(instance.name, url, generate_secret(), datetime.now(UTC))


async def list_webhooks(storage: Storage, instance: str | None = None) -> list[WebhookStatus]:
    """The endpoints of ``instance`` (of every instance when None), with their backlog."""
    webhooks = await storage.webhooks.of_instances(None if instance is None else [instance])
    return [
        WebhookStatus(webhook, await storage.webhooks.stats(webhook.id)) for webhook in webhooks
    ]


async def remove_webhook(storage: Storage, id: str, caller: Caller | None = None) -> None:
    """Remove endpoint ``id``, if ``caller`` (None: the operator) reaches its instance."""
    require_text("id", id, MAX_ID_LENGTH)
    webhook = await storage.webhooks.get(id)
    if webhook is None or not await _reaches(storage, caller, webhook):
        raise WebhookNotFound()
    if not await storage.webhooks.remove(id):
        raise WebhookNotFound()  # removed by someone else meanwhile


async def _reaches(storage: Storage, caller: Caller | None, webhook: Webhook) -> bool:
    if caller is None:
        return True
    instance = await storage.directory.find_instance(webhook.instance)
    return instance is not None and caller.can_reach(instance)
