"""The webhook worker of one gateway process: its relay, its senders, its gauges.

Started by the app's lifespan before the gateway serves and stopped on shutdown.
``SENDERS`` loops each claim the pending delivery due soonest (one atomic
``find_one_and_update``, so each is attempted by one process at a time), send it, and
record the outcome: delivered; or to be retried after an exponential backoff with jitter;
or failed, once ``FAVGATE_WEBHOOK_RETRY_HOURS`` have passed since the change. Idle
senders look again every ``POLL_SECONDS`` (sooner when this process's relay enqueues),
one for all: once one has found nothing due, the others wait for the next poll without
asking, so an idle gateway asks once a poll, not once a sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
from pymongo.errors import PyMongoError

from favgate.config import Settings
from favgate.errors import ChangeStreamsUnavailable
from favgate.metrics import WEBHOOK_DELIVERIES, WEBHOOKS_OLDEST_PENDING, WEBHOOKS_PENDING
from favgate.storage import Delivery, Storage
from favgate.webhooks import sender
from favgate.webhooks.relay import Relay

logger = logging.getLogger(__name__)

SENDERS = 4
POLL_SECONDS = 1.0
# The backlog's gauges (a count and a lookup) are refreshed this often, or as often as
# the first retry's delay when shorter: fresh enough for any scrape interval.
GAUGES_SECONDS = 5.0
# An attempt's lease: longer than its timeout, so that it ends before another may begin.
ATTEMPT_LEASE = timedelta(seconds=sender.TIMEOUT_SECONDS + 5)
MAX_BACKOFF_SECONDS = 3600.0
# How long stopping waits, beyond the database's own timeout, for the loops to finish
# their step before cancelling them.
STOP_GRACE_SECONDS = 1.0


def backoff(attempts: int, base_seconds: float) -> timedelta:
    """The wait after the ``attempts``-th failure: doubling from ``base_seconds``, at most
    an hour, with jitter (half to all of it) so that failed deliveries spread out."""
    ceiling = min(base_seconds * 2 ** min(attempts - 1, 32), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


class WebhookWorker:
    def __init__(self, storage: Storage, settings: Settings) -> None:
        self._storage = storage
        self._outbox = storage.outbox
        self._allow_private = settings.webhook_allow_private
        self._retry_window = timedelta(hours=settings.webhook_retry_hours)
        self._base_seconds = settings.webhook_backoff_seconds
        self._poll = min(POLL_SECONDS, settings.webhook_backoff_seconds)
        self._gauges_every = min(GAUGES_SECONDS, settings.webhook_backoff_seconds)
        self._grace = settings.database_timeout_ms / 1000 + STOP_GRACE_SECONDS
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._database_down = False
        # When a sender last found nothing due (monotonic), unless something was enqueued
        # since: the other senders need not ask again before the next poll.
        self._found_nothing_at: float | None = None
        # How many times the relay has enqueued: a claim that found nothing while it did
        # may have looked before the new deliveries were there.
        self._enqueues = 0
        self._claiming = asyncio.Lock()
        self._relay = Relay(storage, self._owner, self._enqueued)
        self._client: httpx.AsyncClient | None = None
        self._relaying: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        try:
            feed = await self._relay.start()
        except ChangeStreamsUnavailable:
            logger.error("webhooks need change streams (a replica set): none will be sent")
            feed = None
        else:
            self._relaying = asyncio.create_task(self._relay.run(feed))
        self._client = sender.http_client()
        self._tasks += [asyncio.create_task(self._send_loop()) for _ in range(SENDERS)]
        self._tasks.append(asyncio.create_task(self._gauge_loop()))

    async def stop(self) -> None:
        """Stop the relay (its stream closes as the subscriptions' do), let the other
        loops finish their step, then cancel what still runs (an attempt): a database
        operation cut off midway can leave a half-open connection behind (PyMongo)."""
        self._stopping.set()
        self._wake.set()
        self._relay.halt()
        if self._relaying is not None:
            self._relaying.cancel()
            await self._settle([self._relaying])
        if self._tasks:
            _, running = await asyncio.wait(self._tasks, timeout=self._grace)
            for task in running:
                task.cancel()
            await self._settle(self._tasks)
        self._tasks.clear()
        await self._relay.stop()
        if self._client is not None:
            await self._client.aclose()

    async def _settle(self, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for cancelled tasks, at most the grace: a driver read cancelled midway may
        never return (PyMongo's async client), and shutdown must not wait on it."""
        _, stuck = await asyncio.wait(tasks, timeout=self._grace)
        if stuck:
            logger.warning("webhooks: %d task(s) did not stop in time; left behind", len(stuck))
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the loops log their own errors

    def _enqueued(self) -> None:
        """This process's relay enqueued deliveries: every sender asks at once."""
        self._enqueues += 1
        self._found_nothing_at = None
        self._wake.set()

    def _polled_recently(self) -> bool:
        found_nothing_at = self._found_nothing_at
        return found_nothing_at is not None and time.monotonic() - found_nothing_at < self._poll

    async def _send_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                delivery = await self._next_delivery()
                self._database_down = False
                if delivery is not None:
                    await self._attempt(delivery)
                    continue
            except PyMongoError as exc:
                if not self._database_down:  # once per outage, not once per sender and poll
                    logger.warning("webhook deliveries paused, the database failed: %s", exc)
                self._database_down = True
            except Exception:  # a bug must not stop deliveries for good
                logger.exception("webhook delivery failed")
            await self._idle()

    async def _next_delivery(self) -> Delivery | None:
        """The delivery due soonest, claimed; None when none is due. Claims are made one
        at a time, so that one sender finds out for all that none is due."""
        async with self._claiming:
            if self._polled_recently():
                return None
            enqueues = self._enqueues
            delivery = await self._outbox.claim(self._owner, _now(), ATTEMPT_LEASE)
            nothing = delivery is None and enqueues == self._enqueues
            self._found_nothing_at = time.monotonic() if nothing else None
            return delivery

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._poll)
        if not self._stopping.is_set():  # stopping wakes every sender, for good
            self._wake.clear()

    async def _attempt(self, delivery: Delivery) -> None:
        webhook = await self._storage.webhooks.get(delivery.webhook)
        if webhook is None:  # removed since the change was enqueued
            await self._outbox.drop(delivery)
            return
        assert self._client is not None  # started
        error = await sender.send(self._client, webhook, delivery, self._allow_private)
        now = _now()
        if error is None:
            await self._outbox.delivered(delivery, now)
            WEBHOOK_DELIVERIES.labels("delivered").inc()
            return
        deadline = delivery.created_at + self._retry_window
        if now >= deadline:
            await self._outbox.failed(delivery, now, error)
            WEBHOOK_DELIVERIES.labels("failed").inc()
            logger.warning("webhook %s gave up on %s: %s", webhook.id, delivery.event, error)
            return
        retry_at = min(now + backoff(delivery.attempts, self._base_seconds), deadline)
        await self._outbox.retry(delivery, retry_at, error)
        WEBHOOK_DELIVERIES.labels("retried").inc()

    async def _gauge_loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(PyMongoError):
                pending, oldest = await self._outbox.backlog()
                WEBHOOKS_PENDING.set(pending)
                age = 0.0 if oldest is None else (_now() - oldest).total_seconds()
                WEBHOOKS_OLDEST_PENDING.set(max(age, 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._gauges_every)


def _now() -> datetime:
    return datetime.now(UTC)
