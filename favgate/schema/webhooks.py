"""GraphQL for webhook endpoints: the types, and the fields Query and Mutation delegate to.

Each field authorizes like the others (the token must reach the instance), then calls the
shared resolver (``favgate.resolvers.webhooks``), as the CLI does.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from favgate.resolvers.webhooks import WebhookStatus, add_webhook, list_webhooks, remove_webhook
from favgate.schema.types import Info
from favgate.storage import Webhook as StoredWebhook
from favgate.storage import WebhookStats

_NONE = WebhookStats()  # a new endpoint has no deliveries yet


@strawberry.type(description="A webhook endpoint: where an instance's favorite changes are sent.")
class Webhook:
    id: strawberry.ID
    instance: str
    url: str
    created_at: datetime
    pending: int = strawberry.field(description="Deliveries not yet made (being retried).")
    failed: int = strawberry.field(
        description="Deliveries given up on after FAVGATE_WEBHOOK_RETRY_HOURS (kept 7 days)."
    )
    last_error: str | None = strawberry.field(description="Why the latest failed delivery failed.")

    @classmethod
    def from_status(cls, status: WebhookStatus) -> Webhook:
        webhook, stats = status.webhook, status.stats
        return cls(
            id=strawberry.ID(webhook.id),
            instance=webhook.instance,
            url=webhook.url,
            created_at=webhook.created_at,
            pending=stats.pending,
            failed=stats.failed,
            last_error=stats.last_error,
        )


@strawberry.type(description="A new webhook endpoint and its signing secret, shown this once.")
class NewWebhook:
    webhook: Webhook
    secret: str = strawberry.field(
        description="The Standard Webhooks signing secret (whsec_...): keep it, it is not "
        "shown again."
    )

    @classmethod
    def from_record(cls, webhook: StoredWebhook) -> NewWebhook:
        return cls(
            webhook=Webhook.from_status(WebhookStatus(webhook, _NONE)), secret=webhook.secret
        )


async def webhooks(info: Info, instance: str) -> list[Webhook]:
    found = await info.context.access.instance(instance)
    statuses = await list_webhooks(info.context.storage, found.name)
    return [Webhook.from_status(status) for status in statuses]


async def add(info: Info, instance: str, url: str) -> NewWebhook:
    found = await info.context.access.instance(instance)
    allow_private = info.context.webhook_allow_private
    return NewWebhook.from_record(
        await add_webhook(info.context.storage, found, url, allow_private)
    )


async def remove(info: Info, id: str) -> bool:
    caller = await info.context.access.caller()
    await remove_webhook(info.context.storage, id, caller)
    return True
