"""Webhooks, through the app in process: endpoints managed over GraphQL, favorite changes
delivered to a real receiver on 127.0.0.1, signed (checked with ``standardwebhooks``),
retried on failure with the same ``webhook-id``, given up on after the retry window, and
URLs into private networks refused unless allowed."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from helpers import CHAT_JID, MESSAGE_ID, CommandLog, Tenants, serving
from pymongo import MongoClient, monitoring
from webhook_receiver import TIMEOUT, Receiver

from favgate.auth import generate_token, hash_token
from favgate.config import Settings
from favgate.embedded import ServerProcess
from favgate.metrics import REGISTRY
from favgate.storage import InstanceStatus, Storage, open_storage
from favgate.storage.changes import ENDPOINTS_POLL_SECONDS
from favgate.webhooks.relay import SAVE_EVERY_SECONDS
from favgate.webhooks.worker import GAUGES_SECONDS, POLL_SECONDS

pytestmark = pytest.mark.both_drivers

QUIET = 0.5  # seconds of silence that show nothing more came
BACKOFF = 0.05  # the first retry's delay, in seconds

ADD = """
mutation Add($instance: String!, $url: String!) {
  addWebhook(instance: $instance, url: $url) { secret webhook { id instance url } }
}
"""
LIST = """
query List($instance: String!) {
  webhooks(instance: $instance) { id url pending failed lastError }
}
"""
REMOVE = "mutation Remove($id: ID!) { removeWebhook(id: $id) }"
FAVORITE = """
query One($number: String, $messageId: String) {
  favorite(instance: "main", number: $number, messageId: $messageId) {
    id type chatJid messageId favorite favoritedAt updatedAt
    message { id chatJid fromMe timestamp text }
  }
}
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with the webhook worker on, short backoffs, and 127.0.0.1
    allowed (the receiver's address)."""
    return settings.replace(
        webhook_worker=True, webhook_allow_private=True, webhook_backoff_seconds=BACKOFF
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


async def graphql(client: httpx.AsyncClient, token: str, query: str, **variables: Any) -> Any:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers={"token": token}
    )
    body = response.json()
    # 200, but 401 for a token refused before anything ran.
    unauthenticated = "data" not in body and body["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )
    assert response.status_code == (401 if unauthenticated else 200), response.text
    return body


async def add_webhook(client: httpx.AsyncClient, token: str, url: str) -> tuple[str, str]:
    """(id, secret) of a new endpoint of instance main."""
    body = await graphql(client, token, ADD, instance="main", url=url)
    assert "errors" not in body, body
    added = body["data"]["addWebhook"]
    assert added["webhook"]["instance"] == "main" and added["webhook"]["url"] == url
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", added["secret"])
    return added["webhook"]["id"], added["secret"]


async def favorite(client: httpx.AsyncClient, token: str, on: bool = True, **target: str) -> None:
    body = {"number": CHAT_JID, "favorite": on} if not target else {**target, "favorite": on}
    response = await client.post("/api/chat/favorite/main", json=body, headers={"token": token})
    assert response.status_code == 200, response.text


async def listed(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    body = await graphql(client, token, LIST, instance="main")
    assert "errors" not in body, body
    return list(body["data"]["webhooks"])


async def wait_until_listed(
    client: httpx.AsyncClient, token: str, **expected: Any
) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        while True:
            [webhook] = await listed(client, token)
            if all(webhook[key] == value for key, value in expected.items()):
                return webhook
            await asyncio.sleep(0.05)


def counter(outcome: str) -> float:
    value = REGISTRY.get_sample_value("favgate_webhook_deliveries_total", {"outcome": outcome})
    return value or 0.0


async def test_changes_are_delivered_signed_with_the_favorite_as_graphql_shows_it(
    client: httpx.AsyncClient, tenants: Tenants, receiver: Receiver
) -> None:
    _, secret = await add_webhook(client, tenants.acme_token, receiver.url)
    await favorite(client, tenants.main_token)
    await favorite(client, tenants.main_token, messageId=MESSAGE_ID)
    await favorite(client, tenants.main_token, on=False)
    received = await receiver.wait_for_count(3)

    # Deliveries are not ordered (docs/webhooks.md): each event is told by what it holds.
    events = [r.verified(secret) for r in received]
    message = next(e for e in events if e["data"]["favorite"]["messageId"])
    chat, unfavorited = sorted(
        (e for e in events if not e["data"]["favorite"]["messageId"]),
        key=lambda e: not e["data"]["favorite"]["favorite"],
    )
    assert len({r.id for r in received}) == 3, "each change is an event of its own"
    assert all(re.fullmatch(r"evt_[0-9a-f]{32}", r.id) for r in received)
    assert {(r.path, r.headers["content-type"]) for r in received} == {
        ("/hooks/favgate", "application/json")
    }
    shown = await graphql(client, tenants.main_token, FAVORITE, number=CHAT_JID)
    assert unfavorited == {
        "type": "favorite.changed",
        "timestamp": shown["data"]["favorite"]["updatedAt"],
        "data": {"instance": "main", "favorite": shown["data"]["favorite"]},
    }
    assert (chat["data"]["favorite"]["favorite"], unfavorited["data"]["favorite"]["favorite"]) == (
        True,
        False,
    )
    shown = await graphql(client, tenants.main_token, FAVORITE, messageId=MESSAGE_ID)
    assert message["data"]["favorite"] == shown["data"]["favorite"]
    assert message["data"]["favorite"]["message"]["text"] == "hello"
    # A repeated request changes nothing, so sends nothing; another secret verifies nothing.
    await favorite(client, tenants.main_token, messageId=MESSAGE_ID)
    await asyncio.sleep(QUIET)
    assert len(receiver.snapshot()) == 3
    with pytest.raises(Exception, match="No matching signature"):
        received[0].verified("whsec_" + "A" * 43 + "=")


async def test_a_failing_receiver_gets_the_event_again_with_the_same_id(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    delivered, retried = counter("delivered"), counter("retried")
    with Receiver(statuses=(500, 500, 500)) as receiver:
        _, secret = await add_webhook(client, tenants.acme_token, receiver.url)
        await favorite(client, tenants.main_token)
        received = await receiver.wait_for_count(4)
        await asyncio.sleep(QUIET)
        received = receiver.snapshot()

    assert [r.status for r in received] == [500, 500, 500, 200], "once more after recovering"
    assert len({r.id for r in received}) == 1
    assert len({r.body for r in received}) == 1
    assert all(r.verified(secret) for r in received)
    assert (counter("delivered") - delivered, counter("retried") - retried) == (1, 3)
    webhook = await wait_until_listed(client, tenants.acme_token, pending=0)
    assert (webhook["failed"], webhook["lastError"]) == (0, None)


async def test_deliveries_failing_past_the_retry_window_are_recorded_as_failed(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    failed = counter("failed")
    # A redirect is a failure: it is never followed (the receiver would log /elsewhere).
    with Receiver(statuses=(302,) * 1000) as receiver:
        async with serving(settings.replace(webhook_retry_hours=1 / 3600)) as client:
            await add_webhook(client, tenants.acme_token, receiver.url)
            await favorite(client, tenants.main_token)
            pending = await wait_until_listed(client, tenants.acme_token, pending=1)
            assert pending["failed"] == 0
            await wait_for_metric("favgate_webhook_deliveries_pending", lambda v: v == 1)
            # Both counts at once: the two are read one after the other, and the delivery
            # may turn from pending to failed in between.
            webhook = await wait_until_listed(client, tenants.acme_token, failed=1, pending=0)
            await wait_for_metric("favgate_webhook_deliveries_pending", lambda v: v == 0)

    assert (webhook["pending"], webhook["lastError"]) == (0, "answered HTTP 302")
    received = receiver.snapshot()
    assert len(received) >= 3, "retried within the window"
    assert {r.path for r in received} == {"/hooks/favgate"}
    assert len({r.id for r in received}) == 1
    assert counter("failed") - failed == 1


async def test_loopback_and_private_urls_are_refused_unless_allowed(
    settings: Settings, storage: Storage, tenants: Tenants, receiver: Receiver
) -> None:
    refusals = {
        receiver.url: "its host resolves to a non-public address (127.0.0.1)",
        "http://localhost:9/": "its host resolves to a non-public address",
        "http://[::1]/": "its host resolves to a non-public address (::1)",
        "http://[::ffff:127.0.0.1]/": "its host resolves to a non-public address",
        "https://169.254.169.254/latest": "its host resolves to a non-public address",
        "http://10.1.2.3/": "its host resolves to a non-public address (10.1.2.3)",
        "http://192.168.0.1/": "its host resolves to a non-public address",
        "http://0.0.0.0/": "its host resolves to a non-public address (0.0.0.0)",
        "http://100.64.0.1/": "its host resolves to a non-public address",
        "http://224.0.0.1/": "its host resolves to a non-public address",
        "ftp://192.0.2.1/": "must be an http or https URL",
        "/relative": "must be an http or https URL",
        "http://user:secret@8.8.8.8/": "must not contain credentials",
        "http://host.invalid/": "its host does not resolve",
        "http://xn--/": "not a valid URL",
        "https://8.8.8.8:99999/": "not a valid URL",
        "http://a\x00b/": "not a valid URL",
        "http://" + "a" * 2050: "must be at most 2048 characters",
    }
    async with serving(settings.replace(webhook_allow_private=False)) as client:
        for url, reason in refusals.items():
            body = await graphql(client, tenants.acme_token, ADD, instance="main", url=url)
            [error] = body["errors"]
            assert error["extensions"]["code"] == "BAD_USER_INPUT", (url, error)
            assert error["message"].startswith(f"Invalid url: {reason}"), (url, error)
        assert await listed(client, tenants.acme_token) == [], "nothing was stored"
        # An endpoint allowed once is checked again on every delivery: never sent to.
        await storage.webhooks.add(
            "main", receiver.url, "whsec_" + "A" * 43 + "=", datetime.now(UTC)
        )
        await favorite(client, tenants.main_token)
        webhook = await wait_until_listed(client, tenants.acme_token, pending=1)
        await asyncio.sleep(QUIET)
    assert receiver.snapshot() == []
    assert webhook["failed"] == 0


async def test_endpoints_are_managed_within_the_tenant(
    client: httpx.AsyncClient, tenants: Tenants, receiver: Receiver
) -> None:
    id, _ = await add_webhook(client, tenants.main_token, receiver.url)  # instance token
    assert [w["id"] for w in await listed(client, tenants.acme_token)] == [id]
    assert "secret" not in str(await listed(client, tenants.acme_token))
    for token in (tenants.globex_token, tenants.rival_token, tenants.offline_token):
        for query, variables in (
            (LIST, {"instance": "main"}),
            (ADD, {"instance": "main", "url": receiver.url}),
            (REMOVE, {"id": id}),
        ):
            [error] = (await graphql(client, token, query, **variables))["errors"]
            assert error["message"] in {"Instance not found", "Webhook not found"}, error
            assert error["extensions"]["code"] == "NOT_FOUND"
    [error] = (await graphql(client, "nope", LIST, instance="main"))["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert [w["id"] for w in await listed(client, tenants.acme_token)] == [id]

    assert (await graphql(client, tenants.acme_token, REMOVE, id=id))["data"] == {
        "removeWebhook": True
    }
    [error] = (await graphql(client, tenants.acme_token, REMOVE, id=id))["errors"]
    assert error["message"] == "Webhook not found"
    assert await listed(client, tenants.acme_token) == []
    await favorite(client, tenants.main_token)
    await asyncio.sleep(QUIET)
    assert receiver.snapshot() == [], "a removed endpoint is sent nothing"


async def test_each_endpoint_is_sent_the_favorites_written_while_it_exists(
    client: httpx.AsyncClient, tenants: Tenants
) -> None:
    """The relay's stream is filtered to the instances that have endpoints: an endpoint
    added or removed while it runs changes the filter exactly where, among the favorites,
    it was written."""

    async def write(number: str) -> None:
        await favorite(client, tenants.main_token, number=number)

    with Receiver() as first, Receiver() as second:
        await write("5511900000001")  # no endpoint yet: sent to nobody
        first_id, first_secret = await add_webhook(client, tenants.acme_token, first.url)
        await write("5511900000002")
        # Sent before the endpoint goes: what is pending when it does is dropped with it.
        await first.wait_for_count(1)
        await graphql(client, tenants.acme_token, REMOVE, id=first_id)
        await write("5511900000003")  # no endpoint again
        _, second_secret = await add_webhook(client, tenants.acme_token, second.url)
        await write("5511900000004")
        await second.wait_for_count(1)
        await asyncio.sleep(QUIET)
        sent = {
            name: [r.verified(secret)["data"]["favorite"]["chatJid"] for r in receiver.snapshot()]
            for name, receiver, secret in (
                ("first", first, first_secret),
                ("second", second, second_secret),
            )
        }
    assert sent == {
        "first": ["5511900000002@s.whatsapp.net"],
        "second": ["5511900000004@s.whatsapp.net"],
    }


async def test_favorites_of_instances_without_endpoints_cost_the_relay_nothing(
    client: httpx.AsyncClient, tenants: Tenants, receiver: Receiver, commands: CommandLog
) -> None:
    """With an endpoint on main only, favorites of rival reach the relay not at all: no
    batch of changes (the server filters them out), no lookup of endpoints."""
    await add_webhook(client, tenants.acme_token, receiver.url)
    await favorite(client, tenants.main_token)
    await receiver.wait_for_count(1)
    commands.clear()
    started = time.monotonic()
    for i in range(20):
        response = await client.post(
            "/api/chat/favorite/rival",
            json={"number": f"55119000000{i:02d}", "favorite": True},
            headers={"token": tenants.rival_token},
        )
        assert response.status_code == 200, response.text
    await asyncio.sleep(QUIET)
    seen, elapsed = commands.commands, time.monotonic() - started
    assert seen.count(("update", "favorites")) == 20
    assert ("find", "webhooks") not in seen
    # The stream's empty batches only: one per ENDPOINTS_POLL_SECONDS at most.
    batches = sum(name == "getMore" for name, _ in seen)
    assert batches <= (len(seen) and 1 + elapsed / ENDPOINTS_POLL_SECONDS), seen
    assert len(receiver.snapshot()) == 1


@pytest.mark.slow
async def test_an_idle_worker_asks_the_database_little(
    settings: Settings, tenants: Tenants, commands: CommandLog
) -> None:
    """Its senders poll one for all, the gauges every few seconds, the relay's stream a
    batch per quiet wait: about four commands a second at the default poll."""
    async with serving(settings.replace(webhook_backoff_seconds=5.0)):
        await asyncio.sleep(1)  # started: the relay has its lease and its stream
        commands.clear()
        await asyncio.sleep(3)
        seen = commands.commands
    claims = seen.count(("findAndModify", "webhook_deliveries"))
    batches = sum(name == "getMore" for name, _ in seen)
    assert claims <= 3 / POLL_SECONDS + 1, seen
    assert batches <= 3 / ENDPOINTS_POLL_SECONDS + 1, seen
    assert seen.count(("aggregate", "webhook_deliveries")) <= 3 / GAUGES_SECONDS + 1, seen


async def wait_for_metric(name: str, condition: Any) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition(REGISTRY.get_sample_value(name)):
            await asyncio.sleep(0.05)


async def test_a_named_host_is_sent_its_name_and_endpoints_are_bounded(
    client: httpx.AsyncClient, tenants: Tenants, receiver: Receiver
) -> None:
    url = receiver.url.replace("127.0.0.1", "localhost")
    _, secret = await add_webhook(client, tenants.acme_token, url)
    await favorite(client, tenants.main_token)
    [received] = await receiver.wait_for_count(1)
    assert received.verified(secret)["data"]["instance"] == "main"
    # Connected to the address checked, the request still names the host of the URL.
    assert received.headers["host"] == url.split("/")[2]

    for i in range(9):
        await add_webhook(client, tenants.acme_token, f"{url}/{i}")
    body = await graphql(client, tenants.acme_token, ADD, instance="main", url=url)
    assert body["errors"][0]["message"] == "Invalid url: an instance has at most 10 webhooks"
    assert len(await listed(client, tenants.acme_token)) == 10


@pytest.mark.slow
async def test_an_endpoint_added_while_stopped_is_not_sent_what_came_before_the_stop(
    settings: Settings, storage: Storage, tenants: Tenants
) -> None:
    """The favorites the relay's filter skipped still move where it resumes from: an
    endpoint added while no relay runs is sent the changes made since the stop, not those
    its instance had while the relay ran (it would resume from the last change it sent)."""

    async def write(client: httpx.AsyncClient, instance: str, token: str, number: str) -> None:
        response = await client.post(
            f"/api/chat/favorite/{instance}",
            json={"number": number, "favorite": True},
            headers={"token": token},
        )
        assert response.status_code == 200, response.text

    with Receiver() as main, Receiver() as rival:
        async with serving(settings) as client:
            await add_webhook(client, tenants.acme_token, main.url)
            await write(client, "main", tenants.main_token, "5511900000001")
            await main.wait_for_count(1)
            await write(client, "rival", tenants.rival_token, "5511900000002")  # skipped
            # Long enough for the relay to store a position past it.
            await asyncio.sleep(2 * SAVE_EVERY_SECONDS + ENDPOINTS_POLL_SECONDS)
        secret = "whsec_" + "A" * 43 + "="
        await storage.webhooks.add("rival", rival.url, secret, datetime.now(UTC))
        async with serving(settings) as client:
            await write(client, "rival", tenants.rival_token, "5511900000003")
            await rival.wait_for_count(1)
            await asyncio.sleep(QUIET)
        sent = [r.verified(secret)["data"]["favorite"]["chatJid"] for r in rival.snapshot()]
    assert sent == ["5511900000003@s.whatsapp.net"]


async def test_an_endpoint_added_while_the_first_relay_opens_its_stream_is_not_missed(
    settings: Settings, mongodb_uri: str, tenants: Tenants, commands: CommandLog
) -> None:
    """The very first relay reads the endpoints, then opens its stream: an endpoint added
    between the two is neither in what it read nor in what its stream will show."""
    secret = "whsec_" + "A" * 43 + "="
    with Receiver() as receiver, MongoClient(mongodb_uri) as admin:
        endpoints = admin[settings.database]["webhooks"]

        def add_after_the_endpoints_are_read(event: monitoring.CommandSucceededEvent) -> None:
            if event.command_name == "find" and event.reply["cursor"]["ns"].endswith(".webhooks"):
                commands.on_reply = None  # once
                document = {"_id": "wh_" + "0" * 16, "instance": "main", "url": receiver.url}
                endpoints.insert_one(
                    {**document, "secret": secret, "created_at": datetime.now(UTC)}
                )

        commands.on_reply = add_after_the_endpoints_are_read
        async with serving(settings) as client:
            assert commands.on_reply is None, "the relay read the endpoints"
            await favorite(client, tenants.main_token)
            [received] = await receiver.wait_for_count(1)
    assert received.verified(secret)["data"]["instance"] == "main"


SET_FAVORITES = """
mutation Set($instance: String!, $items: [FavoriteInput!]!) {
  setFavorites(instance: $instance, items: $items) { success }
}
"""


async def test_endpoints_churned_on_two_instances_from_two_gateways_get_exactly_their_favorites(
    settings: Settings, tenants: Tenants, receiver: Receiver
) -> None:
    """Endpoints added and removed one after another, on two instances, through two
    gateways (one of them relays), between favorites written in bulk: each endpoint is
    sent the favorites written while it existed, once each, and nothing else (those still
    pending when it was removed may be dropped with it)."""
    tokens = {"main": tenants.main_token, "rival": tenants.rival_token}
    lives: dict[str, tuple[str, set[str]]] = {}  # endpoint's path -> (instance, written)
    removed: set[str] = set()
    ids: dict[str, str] = {}
    async with serving(settings) as first, serving(settings) as second:
        for step in range(10):
            client = (first, second)[step % 2]
            instance = ("main", "rival")[step % 2]
            path = f"/hooks/favgate/{step}"
            body = await graphql(
                client, tokens[instance], ADD, instance=instance, url=receiver.url + f"/{step}"
            )
            ids[path] = body["data"]["addWebhook"]["webhook"]["id"]
            lives[path] = (instance, set())
            if step % 3 == 2:  # the oldest still there goes
                gone = next(p for p in lives if p not in removed)
                body = await graphql(client, tokens[lives[gone][0]], REMOVE, id=ids[gone])
                assert body["data"] == {"removeWebhook": True}
                removed.add(gone)
            for written in ("main", "rival"):
                numbers = [f"55119{step:02d}{written == 'main':d}{i:05d}" for i in range(3)]
                items = [{"number": number, "favorite": True} for number in numbers]
                body = await graphql(
                    client, tokens[written], SET_FAVORITES, instance=written, items=items
                )
                assert body["data"]["setFavorites"] == [{"success": True}] * 3, body
                for p, (of, sent) in lives.items():
                    if of == written and p not in removed:
                        sent.update(f"{number}@s.whatsapp.net" for number in numbers)
        kept = sum(len(sent) for p, (_, sent) in lives.items() if p not in removed)
        await receiver.wait_for(lambda got: len({(r.path, r.id) for r in got}) >= kept)
        await asyncio.sleep(QUIET)
    # Delivered at least once: an event may come again (a slow answer is retried), with
    # its id. Each favorite must be one event, whatever it took to deliver it.
    got: dict[str, dict[str, set[str]]] = {}
    for r in receiver.snapshot():
        assert r.json["data"]["instance"] == lives[r.path][0]
        events = got.setdefault(r.path, {})
        events.setdefault(r.json["data"]["favorite"]["chatJid"], set()).add(r.id)
    for path, (_, sent) in lives.items():
        received = got.get(path, {})
        assert all(len(ids) == 1 for ids in received.values()), (path, "one event each")
        if path in removed:
            assert set(received) <= sent, path
        else:
            assert set(received) == sent, path


async def test_a_dropped_webhooks_collection_ends_its_endpoints_not_the_relay(
    settings: Settings, mongodb_uri: str, tenants: Tenants, receiver: Receiver
) -> None:
    """The endpoints' collection dropped under a running relay (by hand): the endpoints
    are gone, sent nothing more, and one added afterwards is sent what follows."""
    async with serving(settings) as client:
        await add_webhook(client, tenants.acme_token, receiver.url + "/dropped")
        await favorite(client, tenants.main_token, number="5511900000001")
        await receiver.wait_for_count(1)
        with MongoClient(mongodb_uri) as admin:
            admin[settings.database].drop_collection("webhooks")
        await favorite(client, tenants.main_token, number="5511900000002")
        _, secret = await add_webhook(client, tenants.acme_token, receiver.url + "/new")
        await favorite(client, tenants.main_token, number="5511900000003")
        await receiver.wait_for_count(2)
        await asyncio.sleep(QUIET)
    sent = [(r.path, r.json["data"]["favorite"]["chatJid"]) for r in receiver.snapshot()]
    assert sent == [
        ("/hooks/favgate/dropped", "5511900000001@s.whatsapp.net"),
        ("/hooks/favgate/new", "5511900000003@s.whatsapp.net"),
    ]
    assert receiver.snapshot()[1].verified(secret)


@pytest.mark.slow
async def test_a_database_stalled_as_the_relay_reopens_its_stream_loses_nothing(
    settings: Settings, own_server: ServerProcess, receiver: Receiver, commands: CommandLog
) -> None:
    """The database stopped (SIGSTOP) as the relay reopens its stream for a new endpoint,
    between closing the old stream and opening the new one, for longer than the deadline:
    once it is continued, every favorite acknowledged before is sent where it belongs."""
    stalled = settings.with_uri(own_server.uri).replace(database_timeout_ms=300)
    tokens = {name: generate_token() for name in ("main", "other")}
    storage = open_storage(stalled)
    try:
        await storage.ensure_indexes()
        await storage.directory.create_account("acme", hash_token(generate_token()))
        for name, token in tokens.items():
            await storage.directory.create_instance(
                name, "acme", InstanceStatus.CONNECTED, hash_token(token)
            )
        async with serving(stalled) as client:

            async def write(instance: str, number: str) -> None:
                response = await client.post(
                    f"/api/chat/favorite/{instance}",
                    json={"number": number, "favorite": True},
                    headers={"token": tokens[instance]},
                )
                assert response.status_code == 200, response.text

            secret = "whsec_" + "A" * 43 + "="
            await storage.webhooks.add("main", receiver.url + "/main", secret, datetime.now(UTC))
            await write("main", "5511900000001")
            await receiver.wait_for_count(1)
            stopped = asyncio.Event()
            loop = asyncio.get_running_loop()

            def stop_once_the_old_stream_is_closed(event: monitoring.CommandSucceededEvent) -> None:
                if event.command_name == "killCursors":
                    commands.on_reply = None
                    os.kill(own_server.pid, signal.SIGSTOP)
                    loop.call_soon_threadsafe(stopped.set)

            await write("main", "5511900000002")
            # Sent before the stall: a claim cut off by it would hold the delivery for its
            # lease (ATTEMPT_LEASE), a delay, not a loss, that would only slow this test.
            await receiver.wait_for_count(2)
            commands.database = stalled.database
            commands.on_reply = stop_once_the_old_stream_is_closed
            try:
                await storage.webhooks.add(
                    "other", receiver.url + "/other", secret, datetime.now(UTC)
                )
                await asyncio.wait_for(stopped.wait(), TIMEOUT)
                await asyncio.sleep(3)
            finally:
                os.kill(own_server.pid, signal.SIGCONT)
            await write("other", "5511900000003")
            await receiver.wait_for(lambda got: len({(r.path, r.id) for r in got}) >= 3)
            await asyncio.sleep(QUIET)
    finally:
        await storage.close()
    sent = {
        (r.path, r.verified(secret)["data"]["favorite"]["chatJid"]) for r in receiver.snapshot()
    }
    assert sent == {
        ("/hooks/favgate/main", "5511900000001@s.whatsapp.net"),
        ("/hooks/favgate/main", "5511900000002@s.whatsapp.net"),
        ("/hooks/favgate/other", "5511900000003@s.whatsapp.net"),
    }


async def test_the_relay_lease_moving_in_the_middle_of_a_reopen_loses_and_repeats_nothing(
    settings: Settings, mongodb_uri: str, tenants: Tenants, receiver: Receiver, commands: CommandLog
) -> None:
    """The relay's lease runs out (its holder stalled) just as the holder reopens its
    stream for a new endpoint, and the other gateway takes it: for a while both relay.
    Each endpoint is sent each favorite of its time once, under one event id."""
    moved = asyncio.Event()
    loop = asyncio.get_running_loop()
    with MongoClient(mongodb_uri) as admin:
        relay = admin[settings.database]["webhook_relay"]

        def expire_the_lease_once_the_old_stream_is_closed(
            event: monitoring.CommandSucceededEvent,
        ) -> None:
            if event.command_name == "killCursors":
                commands.on_reply = None
                relay.update_one(
                    {"_id": "favorites"}, {"$set": {"leased_until": datetime.now(UTC)}}
                )
                loop.call_soon_threadsafe(moved.set)

        async with serving(settings) as first, serving(settings) as second:
            await add_webhook(first, tenants.acme_token, receiver.url + "/main")
            await favorite(first, tenants.main_token, number="5511900000001")
            await receiver.wait_for_count(1)
            holder = relay.find_one({"_id": "favorites"})["owner"]
            commands.on_reply = expire_the_lease_once_the_old_stream_is_closed
            body = await graphql(
                second, tenants.rival_token, ADD, instance="rival", url=receiver.url + "/rival"
            )
            assert "errors" not in body, body
            await asyncio.wait_for(moved.wait(), TIMEOUT)
            for i in range(2, 12):
                client = (first, second)[i % 2]
                await favorite(client, tenants.main_token, number=f"55119000000{i:02d}")
                response = await client.post(
                    "/api/chat/favorite/rival",
                    json={"number": f"55119000000{i:02d}", "favorite": True},
                    headers={"token": tenants.rival_token},
                )
                assert response.status_code == 200, response.text
                await asyncio.sleep(0.1)
            await receiver.wait_for(lambda got: len(got) >= 21)
            await asyncio.sleep(QUIET)
            assert relay.find_one({"_id": "favorites"})["owner"] != holder, "the lease moved"
    received = receiver.snapshot()
    assert len({r.id for r in received}) == len(received) == 21, "each sent once"
    numbers = [f"55119000000{i:02d}@s.whatsapp.net" for i in range(1, 12)]
    sent = {(r.path, r.json["data"]["favorite"]["chatJid"]) for r in received}
    assert sent == {("/hooks/favgate/main", n) for n in numbers} | {
        ("/hooks/favgate/rival", n) for n in numbers[1:]
    }


async def test_a_change_enqueued_during_a_claim_that_found_nothing_is_sent_at_once(
    settings: Settings, mongodb_uri: str, tenants: Tenants, receiver: Receiver, commands: CommandLog
) -> None:
    """A sender's claim finds nothing due while this process's relay enqueues a change:
    its finding must not hold the other senders back until the next poll."""
    if settings.mongo_driver != "motor":
        pytest.skip("the claim's reply is held in motor's thread; PyMongo's is the loop's")
    claim_held, enqueued = threading.Event(), threading.Event()
    with MongoClient(mongodb_uri) as admin:
        deliveries = admin[settings.database]["webhook_deliveries"]

        def hold_an_empty_claim_until_enqueued(event: monitoring.CommandSucceededEvent) -> None:
            if event.command_name == "findAndModify" and event.reply.get("value") is None:
                commands.on_reply = None
                claim_held.set()
                deadline = time.monotonic() + TIMEOUT
                while not deliveries.count_documents({}) and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(0.1)  # the relay has told the senders
                enqueued.set()

        async with serving(settings.replace(webhook_backoff_seconds=5.0)) as client:
            await add_webhook(client, tenants.acme_token, receiver.url)
            commands.on_reply = hold_an_empty_claim_until_enqueued
            assert await asyncio.to_thread(claim_held.wait, TIMEOUT)
            await favorite(client, tenants.main_token)
            assert await asyncio.to_thread(enqueued.wait, TIMEOUT)
            released = time.monotonic()
            await receiver.wait_for_count(1)
            waited = time.monotonic() - released
    assert waited < POLL_SECONDS / 2, f"sent {waited:.2f} s after it was enqueued"
