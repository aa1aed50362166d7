"""Tokens: reading them from headers, making and hashing them, and what ``Access`` lets a
token reach, checked against the real database seeded by the ``tenants`` fixture."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from helpers import Tenants
from starlette.datastructures import Headers

from favgate.auth import MAX_TOKEN_LENGTH, Access, generate_token, hash_token, token_from_headers
from favgate.errors import InstanceNameRequired, InstanceNotFound, InvalidToken
from favgate.storage import Caller, Instance, InstanceStatus, Storage

# --- Reading the token from headers -------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({"token": "abc"}, "abc"),
        ({"Token": "  abc  "}, "abc"),
        ({"Authorization": "abc"}, "abc"),
        ({"Authorization": "Bearer abc"}, "abc"),
        ({"Authorization": "bearer abc"}, "abc"),
        ({"Authorization": "BEARER abc"}, "abc"),
        ({"Authorization": "BeArEr    abc  "}, "abc"),
        ({"token": "from-token", "Authorization": "Bearer from-auth"}, "from-token"),
        ({"token": "from-token", "Authorization": "from-auth"}, "from-token"),
        # An empty token header does not hide a usable Authorization header.
        ({"token": "", "Authorization": "Bearer from-auth"}, "from-auth"),
        ({"token": "   ", "Authorization": "from-auth"}, "from-auth"),
        ({}, None),
        ({"token": ""}, None),
        ({"token": "   "}, None),
        ({"Authorization": ""}, None),
        ({"Authorization": "   "}, None),
        ({"Authorization": "Bearer"}, None),
        ({"Authorization": "Bearer    "}, None),
        ({"token": " ", "Authorization": " "}, None),
        ({"X-Token": "abc"}, None),
    ],
)
def test_token_from_headers(headers: dict[str, str], token: str | None) -> None:
    # Starlette's Headers, as requests carry them: names are case-insensitive.
    assert token_from_headers(Headers(headers=headers)) == token


# --- Making and hashing tokens ------------------------------------------------------------


def test_generated_tokens_are_long_and_unique() -> None:
    tokens = [generate_token() for _ in range(1000)]
    assert len(set(tokens)) == len(tokens)
    assert all(32 <= len(token) <= MAX_TOKEN_LENGTH for token in tokens)
    # URL-safe: they travel in headers unquoted.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", token) for token in tokens)


def test_hash_token_is_sha256_hex() -> None:
    token = "a1b2c3d4-token"
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token(token))
    assert hash_token(token) == hash_token(token)
    assert hash_token(token) != hash_token(token + "x")


def _strings(value: Any) -> list[str]:
    """Every string anywhere inside a document."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


async def test_database_stores_only_hashes(storage: Storage, tenants: Tenants) -> None:
    tokens = [
        tenants.acme_token,
        tenants.main_token,
        tenants.offline_token,
        tenants.globex_token,
        tenants.rival_token,
    ]
    stored: list[str] = []
    hashes: list[str] = []
    for collection in ("accounts", "instances"):
        async for doc in storage._database[collection].find():
            stored += _strings(doc)
            hashes += doc["token_hashes"]
    assert sorted(hashes) == sorted(hash_token(token) for token in tokens)
    for token in tokens:
        assert not any(token in text for text in stored)


# --- What a token reaches -----------------------------------------------------------------

ACME_INSTANCES = ["main", "offline"]


async def test_account_token_reaches_every_instance_of_its_account(
    storage: Storage, tenants: Tenants
) -> None:
    access = Access(storage, tenants.acme_token)
    assert await access.caller() == Caller(account="acme")
    assert await access.instance("main") == Instance("main", "acme", InstanceStatus.CONNECTED)
    assert await access.instance("offline") == Instance(
        "offline", "acme", InstanceStatus.DISCONNECTED
    )
    with pytest.raises(InstanceNotFound):
        await access.instance("rival")


@pytest.mark.parametrize("own", ACME_INSTANCES)
async def test_instance_token_reaches_its_own_instance_only(
    storage: Storage, tenants: Tenants, own: str
) -> None:
    token = tenants.main_token if own == "main" else tenants.offline_token
    access = Access(storage, token)
    assert await access.caller() == Caller(account="acme", instance=own)
    assert (await access.instance(own)).name == own
    for other in [*ACME_INSTANCES, "rival"]:
        if other != own:
            with pytest.raises(InstanceNotFound):
                await access.instance(other)


async def test_other_account_cannot_reach_acme(storage: Storage, tenants: Tenants) -> None:
    for token in (tenants.globex_token, tenants.rival_token):
        access = Access(storage, token)
        assert (await access.instance("rival")).account == "globex"
        for name in ACME_INSTANCES:
            with pytest.raises(InstanceNotFound):
                await access.instance(name)


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "unknown-token",
        "x" * (MAX_TOKEN_LENGTH + 1),
        "y" * 100_000,
    ],
    ids=["none", "empty", "unknown", "just-too-long", "huge"],
)
async def test_bad_tokens_are_invalid(
    storage: Storage, tenants: Tenants, token: str | None
) -> None:
    access = Access(storage, token)
    with pytest.raises(InvalidToken) as caught:
        await access.caller()
    assert str(caught.value) == "Invalid token"
    with pytest.raises(InvalidToken):
        await access.instance("main")


async def test_hash_is_not_a_token(storage: Storage, tenants: Tenants) -> None:
    """Knowing what the database stores does not let anyone in."""
    with pytest.raises(InvalidToken):
        await Access(storage, hash_token(tenants.acme_token)).caller()


async def test_overlong_token_is_refused_even_if_its_hash_is_stored(
    storage: Storage, tenants: Tenants
) -> None:
    token = "z" * (MAX_TOKEN_LENGTH + 1)
    await storage.directory.create_account("longco", hash_token(token))
    with pytest.raises(InvalidToken):
        await Access(storage, token).caller()
    exact = "z" * MAX_TOKEN_LENGTH
    await storage.directory.create_account("edgeco", hash_token(exact))
    assert await Access(storage, exact).caller() == Caller(account="edgeco")


@pytest.mark.parametrize("name", [None, "", " ", "\t\n"])
async def test_blank_instance_name_is_required(
    storage: Storage, tenants: Tenants, name: str | None
) -> None:
    with pytest.raises(InstanceNameRequired):
        await Access(storage, tenants.acme_token).instance(name)


async def test_name_is_checked_before_the_token(storage: Storage, tenants: Tenants) -> None:
    with pytest.raises(InstanceNameRequired):
        await Access(storage, "unknown-token").instance("")
    with pytest.raises(InvalidToken):
        await Access(storage, "unknown-token").instance("no-such-instance")


async def test_instance_lookup_hides_existence(storage: Storage, tenants: Tenants) -> None:
    access = Access(storage, tenants.main_token)
    with pytest.raises(InstanceNotFound) as foreign:
        await access.instance("rival")
    with pytest.raises(InstanceNotFound) as missing:
        await access.instance("no-such-instance")
    assert type(foreign.value) is type(missing.value) is InstanceNotFound
    assert str(foreign.value) == str(missing.value) == "Instance not found"
    assert foreign.value.extensions == missing.value.extensions


async def test_caller_is_looked_up_once_per_access(storage: Storage, tenants: Tenants) -> None:
    access = Access(storage, tenants.acme_token)
    first = await access.caller()
    # Rotating the token mid-request does not change who this request's caller is.
    await storage.directory.reset_account("acme", hash_token(generate_token()))
    assert await access.caller() is first
    with pytest.raises(InvalidToken):
        await Access(storage, tenants.acme_token).caller()
