"""Rate limiting over the wire: one budget per token shared by REST and GraphQL, exact at
the boundary, its headers, 429 in both APIs' shapes, bad tokens uncharged, the sliding
window in real time, exact admission under concurrency, one round trip per check, and a
store outage answered 503 (fail closed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from helpers import (
    CHAT_JID,
    CommandLog,
    Tenants,
    collect_leaked_sockets,
    seed_instance,
    serving,
)
from pymongo.errors import ConnectionFailure

from favgate.auth import MAX_TOKEN_LENGTH, generate_token, hash_token
from favgate.config import ConfigError, Settings
from favgate.embedded import ServerProcess
from favgate.errors import ServiceUnavailable, public_error
from favgate.ratelimit.limiter import Limiter, Policy, decide
from favgate.storage import Bucket, Storage, open_storage
from favgate.storage.indexes import RATE_LIMITS

LIMIT = 5
REFUSED = {"success": False, "error": {"message": "Rate limit exceeded. Try again later."}}
UNAVAILABLE = {"success": False, "error": {"message": "Service temporarily unavailable"}}
INVALID_TOKEN = {"success": False, "error": {"message": "Invalid token"}}
# Nothing ran: no "data" (GraphQL over HTTP).
GRAPHQL_REFUSED = {
    "errors": [
        {
            "message": "Rate limit exceeded. Try again later.",
            "extensions": {"code": "RATE_LIMITED"},
        }
    ],
}
FAVORITE_QUERY = '{ favorite(instance: "main", number: "5511999999999") { favorite } }'
BUDGET_FIELDS = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "ratelimit-policy",
    "ratelimit",
]


@pytest.fixture
async def limited(settings: Settings, storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a budget of LIMIT requests per 60 s per token."""
    async with serving(settings.replace(rate_limit=LIMIT)) as client:
        yield client


async def rest(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"token": token}
    return await client.post(
        "/api/chat/favorite/main", json={"number": CHAT_JID, "favorite": True}, headers=headers
    )


async def graphql(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"token": token}
    return await client.post("/graphql", json={"query": FAVORITE_QUERY}, headers=headers)


def budget(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in BUDGET_FIELDS if name in response.headers}


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


def reset(response: httpx.Response) -> int:
    """A request counts until a window after the end of its one-second bucket: the whole
    budget is back in 61 s at most, in 60 once its second has passed."""
    seconds = int(response.headers["x-ratelimit-reset"])
    assert seconds in (60, 61)
    assert response.headers["ratelimit"].endswith(f";t={seconds}")
    return seconds


async def spend(client: httpx.AsyncClient, token: str, n: int) -> None:
    for _ in range(n):
        assert (await rest(client, token)).status_code == 200


# --- One budget, exact at the boundary ----------------------------------------------------


async def test_rest_and_graphql_share_one_budget(
    limited: httpx.AsyncClient, tenants: Tenants
) -> None:
    token = tenants.acme_token
    responses = []
    for i in range(LIMIT):
        call = rest if i % 2 == 0 else graphql
        responses.append(await call(limited, token))
    assert [r.status_code for r in responses] == [200] * LIMIT, responses[-1].text
    assert responses[1].json() == {"data": {"favorite": {"favorite": True}}}
    assert [remaining(r) for r in responses] == [4, 3, 2, 1, 0]

    refused = [await rest(limited, token), await graphql(limited, token)]
    assert [r.status_code for r in refused] == [429, 429]
    assert refused[0].json() == REFUSED
    assert refused[1].json() == GRAPHQL_REFUSED


async def test_budget_fields_on_success(limited: httpx.AsyncClient, tenants: Tenants) -> None:
    response = await rest(limited, tenants.acme_token)
    assert response.status_code == 200
    # One request admitted just now: it leaves the window 60 s after the end of its
    # second, 61 s from now rounded up.
    assert budget(response) == {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "4",
        "x-ratelimit-reset": "61",
        "ratelimit-policy": '"default";q=5;w=60',
        "ratelimit": '"default";r=4;t=61',
    }
    assert "retry-after" not in response.headers
    graphql_response = await graphql(limited, tenants.acme_token)
    assert graphql_response.headers["ratelimit"].startswith('"default";r=3;t=')
    assert reset(graphql_response) == 61


async def test_budget_fields_and_retry_after_on_refusal(
    limited: httpx.AsyncClient, tenants: Tenants
) -> None:
    started = time.monotonic()
    await spend(limited, tenants.acme_token, LIMIT)
    response = await rest(limited, tenants.acme_token)
    elapsed = time.monotonic() - started
    assert response.status_code == 429
    assert response.json() == REFUSED
    # The first request leaves the window 60 s after the end of its second: whole
    # seconds, rounded up.
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert 60 - elapsed <= int(retry_after) <= 61
    seconds = reset(response)
    assert budget(response) == {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(seconds),
        "ratelimit-policy": '"default";q=5;w=60',
        "ratelimit": f'"default";r=0;t={seconds}',
    }


async def test_graphql_refusal(limited: httpx.AsyncClient, tenants: Tenants) -> None:
    await spend(limited, tenants.acme_token, LIMIT)
    response = await graphql(limited, tenants.acme_token)
    assert response.status_code == 429
    assert response.json() == GRAPHQL_REFUSED
    assert int(response.headers["retry-after"]) >= 59
    assert response.headers["ratelimit"].startswith('"default";r=0;t=')
    reset(response)


async def test_refusals_spend_nothing(
    limited: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    await spend(limited, tenants.acme_token, LIMIT)
    for _ in range(10):
        assert (await rest(limited, tenants.acme_token)).status_code == 429
    doc = await storage._database[RATE_LIMITS].find_one({"_id": hash_token(tenants.acme_token)})
    assert doc is not None
    assert sum(bucket["n"] for bucket in doc["buckets"]) == LIMIT


# --- Whose budget -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_token",
    [None, "", "not-a-token", "x" * (MAX_TOKEN_LENGTH + 1)],
    ids=["missing", "empty", "unknown", "too-long"],
)
async def test_bad_tokens_are_not_charged(
    limited: httpx.AsyncClient, tenants: Tenants, storage: Storage, bad_token: str | None
) -> None:
    for i in range(LIMIT + 1):
        response = await rest(limited, bad_token)
        assert (response.status_code, response.json()) == (401, INVALID_TOKEN)
        assert budget(response) == {}
        # GraphQL reads the document of a request without a token (it may only introspect,
        # where introspection is enabled): that costs its client address, not a token.
        response = await graphql(limited, bad_token)
        if i < LIMIT:
            assert response.status_code == 401
            assert response.json()["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
            assert remaining(response) == LIMIT - 1 - i
        else:
            assert response.status_code == 429
    # Nothing recorded for the tokens, and every token still has its whole budget.
    assert await storage._database[RATE_LIMITS].count_documents({}) == 1  # the address's
    assert remaining(await rest(limited, tenants.acme_token)) == LIMIT - 1


async def test_tokens_have_budgets_of_their_own(
    limited: httpx.AsyncClient, tenants: Tenants
) -> None:
    await spend(limited, tenants.acme_token, LIMIT)
    assert (await rest(limited, tenants.acme_token)).status_code == 429
    # The instance token of the same account, and another account's token: untouched.
    assert remaining(await rest(limited, tenants.main_token)) == LIMIT - 1
    rival = await limited.post(
        "/api/chat/favorite/rival",
        json={"number": CHAT_JID, "favorite": True},
        headers={"token": tenants.rival_token},
    )
    assert rival.status_code == 200
    assert remaining(rival) == LIMIT - 1


async def test_a_request_refused_by_the_app_is_still_charged(
    limited: httpx.AsyncClient, tenants: Tenants
) -> None:
    # A known token asking for another tenant's instance: work was done, so it counts.
    response = await limited.post(
        "/api/chat/favorite/rival",
        json={"number": CHAT_JID, "favorite": True},
        headers={"token": tenants.acme_token},
    )
    assert response.status_code == 404
    assert remaining(response) == LIMIT - 1


async def test_the_key_is_the_hash_of_the_token(
    limited: httpx.AsyncClient, tenants: Tenants, storage: Storage
) -> None:
    await rest(limited, tenants.acme_token)
    [doc] = await storage._database[RATE_LIMITS].find().to_list(None)
    assert doc["_id"] == hash_token(tenants.acme_token)
    assert tenants.acme_token not in repr(doc)


async def test_other_routes_are_not_charged(limited: httpx.AsyncClient, tenants: Tenants) -> None:
    headers = {"token": tenants.acme_token}
    for path in ("/healthz", "/readyz"):
        response = await limited.get(path, headers=headers)
        assert response.status_code == 200
        assert budget(response) == {}
    assert remaining(await rest(limited, tenants.acme_token)) == LIMIT - 1


# --- The limiter --------------------------------------------------------------------------


@pytest.mark.both_drivers
@pytest.mark.slow
async def test_sliding_window_in_real_time(storage: Storage) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=3, window=2))
    decisions = [await limiter.acquire("key") for _ in range(3)]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    refused = await limiter.acquire("key")
    assert not refused.admitted
    # The first leaves 2 s after the end of its bucket (a 60th of the window).
    assert refused.retry_after in (2, 3)
    assert refused.headers()["RateLimit-Policy"] == '"default";q=3;w=2'
    await asyncio.sleep(refused.retry_after)
    again = await limiter.acquire("key")
    # Retry-After was right: the first has left. (The other two leave with it, or with
    # the next 33 ms bucket.)
    assert again.admitted


@pytest.mark.both_drivers
async def test_exact_under_concurrency(storage: Storage) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=10))
    decisions = await asyncio.gather(*(limiter.acquire("key") for _ in range(50)))
    assert sum(d.admitted for d in decisions) == 10
    refused = [d for d in decisions if not d.admitted]
    assert all(d.remaining == 0 and d.retry_after in (60, 61) for d in refused)


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def leaving(*seconds: float, units: int = 1) -> tuple[Bucket, ...]:
    """Buckets of ``units`` each, leaving the window ``seconds`` after NOW."""
    return tuple(Bucket(NOW + timedelta(seconds=s), units) for s in sorted(seconds))


def test_decide_rounds_up_to_whole_seconds() -> None:
    decision = decide(leaving(0.5, 49.8), Policy(limit=2), admitted=False, cost=1, now=NOW)
    assert (decision.retry_after, decision.reset_seconds, decision.remaining) == (1, 50, 0)


def test_decide_waits_for_as_many_units_as_the_cost_needs() -> None:
    buckets = leaving(10, 20, 30)
    decision = decide(buckets, Policy(limit=3), admitted=False, cost=2, now=NOW)
    assert decision.retry_after == 20  # two must leave: the second leaves in 20 s
    too_much = decide(buckets, Policy(limit=3), admitted=False, cost=4, now=NOW)
    assert too_much.retry_after == 60


def test_decide_counts_whole_buckets() -> None:
    decision = decide(leaving(10, 20, units=3), Policy(limit=6), admitted=False, cost=1, now=NOW)
    assert decision.retry_after == 10


def test_decide_when_admitted() -> None:
    decision = decide(leaving(30, 60), Policy(limit=5), admitted=True, cost=1, now=NOW)
    assert (decision.admitted, decision.retry_after) == (True, None)
    assert (decision.remaining, decision.reset_seconds) == (3, 60)
    assert "Retry-After" not in decision.headers()


def test_a_lease_not_spent_yet_is_left_to_the_client() -> None:
    decision = decide(
        leaving(61, units=10), Policy(limit=20), admitted=True, cost=1, now=NOW, unspent=6
    )
    assert decision.remaining == 16


# --- Round trips --------------------------------------------------------------------------


def record(commands: CommandLog, settings: Settings) -> None:
    commands.clear()
    commands.active = True


@pytest.mark.both_drivers
async def test_one_round_trip_per_check(
    commands: CommandLog, settings: Settings, storage: Storage
) -> None:
    limiter = Limiter(storage.rate_limits, Policy(limit=2))
    record(commands, settings)
    for _ in range(3):
        await limiter.acquire("key")
    assert commands.commands == [("findAndModify", RATE_LIMITS)] * 3


@pytest.mark.both_drivers
async def test_one_round_trip_per_request(
    commands: CommandLog, settings: Settings, limited: httpx.AsyncClient, tenants: Tenants
) -> None:
    record(commands, settings)
    for call in (rest, graphql, rest):
        await call(limited, tenants.acme_token)
    limiter_commands = [c for c in commands.commands if c[1] == RATE_LIMITS]
    assert limiter_commands == [("findAndModify", RATE_LIMITS)] * 3


# --- Store outage -------------------------------------------------------------------------


@pytest.mark.both_drivers
@pytest.mark.slow
async def test_store_unreachable_fails_closed(own_server: ServerProcess, driver: str) -> None:
    settings = Settings(
        mongo_driver=driver,  # type: ignore[arg-type]
        database_timeout_ms=300,
        rate_limit=LIMIT,
    ).with_uri(own_server.uri)
    token = generate_token()
    async with serving(settings) as client:
        await seed_instance(settings, account_token=token)
        assert (await rest(client, token)).status_code == 200
        await asyncio.to_thread(own_server.kill)

        started = time.monotonic()
        response = await rest(client, token)
        assert (response.status_code, response.json()) == (503, UNAVAILABLE)
        assert budget(response) == {}
        response = await graphql(client, token)
        assert time.monotonic() - started < 5
        # Refused before anything ran: 503, no data, a coded error.
        body = response.json()
        assert (response.status_code, "data" in body) == (503, False)
        [error] = body["errors"]
        assert error["message"] == "Service temporarily unavailable"
        assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
    collect_leaked_sockets()


@pytest.mark.slow
async def test_limiter_raises_an_outage(own_server: ServerProcess) -> None:
    settings = Settings(database_timeout_ms=300).with_uri(own_server.uri)
    await asyncio.to_thread(own_server.kill)
    storage = open_storage(settings)
    try:
        limiter = Limiter(storage.rate_limits, Policy(limit=LIMIT))
        with pytest.raises(ConnectionFailure) as raised:
            await limiter.acquire("key")
        assert isinstance(public_error(raised.value), ServiceUnavailable)
    finally:
        await storage.close()
        collect_leaked_sockets()


# --- Configuration ------------------------------------------------------------------------


def test_the_limit_comes_from_the_environment() -> None:
    assert Settings.from_env({}).rate_limit == 100
    assert Settings.from_env({"FAVGATE_RATE_LIMIT": "250"}).rate_limit == 250


@pytest.mark.parametrize("raw", ["", "0", "-1", "1.5", "lots"])
def test_a_bad_limit_fails_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="FAVGATE_RATE_LIMIT"):
        Settings.from_env({"FAVGATE_RATE_LIMIT": raw})
