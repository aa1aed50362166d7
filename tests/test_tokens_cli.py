"""The operator's token commands (issue 13), run against a real ``favgate serve``.

The commands run in process (``main``) on the database a gateway process serves; the
gateway is asked over a socket, so an adopted or added token is seen working, and a
revoked one refused within the cache TTL, exactly as a client would see them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import free_port, with_database
from pymongo import MongoClient

from favgate.auth import hash_token
from favgate.cli import main
from favgate.config import DEFAULT_CACHE_TTL

pytestmark = pytest.mark.slow

PROVIDER_ACCOUNT_TOKEN = "a1b2c3d4-0000-4000-8000-00000000acc7"
PROVIDER_INSTANCE_TOKEN = "a1b2c3d4-0000-4000-8000-0000000001a5"
STARTUP_TIMEOUT = 60.0


@dataclass
class Gateway:
    url: str
    uri: str

    def favorite(self, token: str, instance: str = "main") -> int:
        """The status of a chat favorite through the REST route, with ``token``."""
        response = httpx.post(
            f"{self.url}/api/chat/favorite/{instance}",
            json={"number": "5511999999999", "favorite": True},
            headers={"token": token},
            timeout=10,
        )
        return response.status_code

    def refused_within_ttl(self, token: str) -> bool:
        time.sleep(DEFAULT_CACHE_TTL + 0.2)  # what the gateway cached has expired
        return self.favorite(token) == 401


@pytest.fixture(scope="module")
def gateway(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A ``favgate serve`` process on a database of its own, with the default TTL."""
    uri = with_database(mongodb_uri, f"favgate_tokens_{uuid.uuid4().hex[:12]}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAVGATE_")}
    env |= {"MONGODB_URI": uri, "PYTHONUNBUFFERED": "1"}
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "favgate.cli", "serve", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, log)
        yield Gateway(url, uri)
    finally:
        proc.terminate()
        proc.wait(30)
        client: MongoClient[dict[str, Any]] = MongoClient(uri)
        with client:
            client.drop_database(client.get_default_database())


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"serve not ready after {STARTUP_TIMEOUT:g} s:\n{log.read_text()}")


@dataclass
class Cli:
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def run(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        self.capsys.readouterr()
        status = main(list(argv))
        out, err = self.capsys.readouterr()
        return status, out, err

    def ok(self, *argv: str, stdin: str = "") -> Any:
        status, out, err = self.run(*argv, stdin=stdin)
        assert (status, err) == (0, ""), (out, err)
        return json.loads(out)

    def lines(self, *argv: str) -> list[Any]:
        status, out, err = self.run(*argv)
        assert (status, err) == (0, ""), (out, err)
        return [json.loads(line) for line in out.splitlines()]

    def fails(self, *argv: str, stdin: str = "") -> str:
        status, out, err = self.run(*argv, stdin=stdin)
        assert (status, out) == (1, ""), (out, err)
        return str(json.loads(err)["error"])


@pytest.fixture
def cli(
    gateway: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("MONGODB_URI", gateway.uri)
    monkeypatch.delenv("FAVGATE_MONGO_DRIVER", raising=False)
    return Cli(capsys, monkeypatch)


@pytest.fixture
def names() -> tuple[str, str]:
    """An account and an instance of the test's own, in the module's shared database."""
    suffix = uuid.uuid4().hex[:8]
    return f"acct-{suffix}", f"inst-{suffix}"


def stored_hashes(gateway: Gateway) -> str:
    """Everything the directory collections hold, as text."""
    client: MongoClient[dict[str, Any]] = MongoClient(gateway.uri)
    with client:
        db = client.get_default_database()
        docs = [*db.accounts.find(), *db.instances.find()]
    return json.dumps(docs, default=str)


def test_adopted_tokens_keep_working(cli: Cli, gateway: Gateway) -> None:
    account_token = PROVIDER_ACCOUNT_TOKEN + uuid.uuid4().hex[:4]
    instance_token = PROVIDER_INSTANCE_TOKEN + uuid.uuid4().hex[:4]
    out = cli.ok("account", "create", "acme-adopt", "--token-stdin", stdin=account_token + "\n")
    assert out == {"account": "acme-adopt"}  # the token is never printed back
    out = cli.ok(
        "instance", "create", "main", "--account", "acme-adopt", "--token-stdin",
        stdin=instance_token,
    )  # fmt: skip
    assert out == {"instance": "main", "account": "acme-adopt", "status": "connected"}
    assert gateway.favorite(account_token) == 200
    assert gateway.favorite(instance_token) == 200
    stored = stored_hashes(gateway)
    assert hash_token(account_token) in stored and hash_token(instance_token) in stored
    assert account_token not in stored and instance_token not in stored
    # A token held already, by an account or an instance, is not adopted twice.
    commands = [
        ["account", "create", "other"],
        ["instance", "create", "x", "--account", "acme-adopt"],
    ]
    for argv in commands:
        assert cli.fails(*argv, "--token-stdin", stdin=instance_token) == "Token already in use"


@pytest.mark.parametrize(
    "stdin", ["", "short-token", "has a space inside it", "x" * 257, "tøken-with-accents-ø"]
)
def test_a_bad_adopted_token_changes_nothing(cli: Cli, gateway: Gateway, stdin: str) -> None:
    error = cli.fails("account", "create", "never", "--token-stdin", stdin=stdin)
    assert error.startswith("Invalid token: expected 16 to 256 visible ASCII characters")
    assert not [a for a in cli.lines("account", "list") if a["name"] == "never"]


def test_rotation_without_downtime(cli: Cli, gateway: Gateway, names: tuple[str, str]) -> None:
    account, instance = names
    cli.ok("account", "create", account)
    old = cli.ok("instance", "create", instance, "--account", account)["token"]
    assert gateway.favorite(old, instance) == 200
    added = cli.ok("token", "add", "--instance", instance)
    assert list(added) == ["instance", "token"] and added["instance"] == instance
    new = added["token"]
    assert gateway.favorite(new, instance) == 200
    assert gateway.favorite(old, instance) == 200  # both work while clients move
    revoked = cli.ok("token", "revoke", "--instance", instance, "--token-stdin", stdin=old)
    assert revoked == {"instance": instance, "revoked": 1}
    time.sleep(DEFAULT_CACHE_TTL + 0.2)
    assert gateway.favorite(old, instance) == 401
    assert gateway.favorite(new, instance) == 200
    # Revoking it again, or a token the instance never held, is an error.
    error = cli.fails("token", "revoke", "--instance", instance, "--token-stdin", stdin=old)
    assert error == f"No such token of instance {instance}"


def test_revoke_all(cli: Cli, gateway: Gateway, names: tuple[str, str]) -> None:
    account, instance = names
    first = cli.ok("account", "create", account)["token"]
    second = cli.ok("token", "add", "--account", account)["token"]
    cli.ok("instance", "create", instance, "--account", account)
    assert gateway.favorite(first, instance) == gateway.favorite(second, instance) == 200
    assert cli.ok("token", "revoke", "--account", account, "--all") == {
        "account": account,
        "revoked": 2,
    }
    time.sleep(DEFAULT_CACHE_TTL + 0.2)
    assert gateway.favorite(first, instance) == gateway.favorite(second, instance) == 401
    listed = [a for a in cli.lines("account", "list") if a["name"] == account]
    assert [a["tokens"] for a in listed] == [0]
    # Another owner without tokens does not collide with this one; a new token works.
    cli.ok("token", "revoke", "--instance", instance, "--all")
    third = cli.ok("token", "add", "--account", account)["token"]
    assert gateway.favorite(third, instance) == 200


def test_a_revoked_token_is_refused_even_while_in_use(
    cli: Cli, gateway: Gateway, names: tuple[str, str]
) -> None:
    account, instance = names
    token = cli.ok("account", "create", account)["token"]
    cli.ok("instance", "create", instance, "--account", account)
    assert gateway.favorite(token, instance) == 200  # cached by the gateway now
    revoked_at = time.monotonic()
    cli.ok("token", "revoke", "--account", account, "--token-stdin", stdin=token)
    while gateway.favorite(token, instance) != 401:
        assert time.monotonic() - revoked_at < 2.0, "still admitted past the TTL bound"
        time.sleep(0.05)


def test_unknown_owners(cli: Cli, gateway: Gateway) -> None:
    assert cli.fails("token", "add", "--account", "ghost") == "Account not found: ghost"
    assert cli.fails("token", "add", "--instance", "ghost") == "Instance not found: ghost"
    assert cli.fails("token", "revoke", "--account", "ghost", "--all") == "Account not found: ghost"
    with pytest.raises(SystemExit) as usage:  # one owner, never both
        cli.run("token", "add", "--account", "a", "--instance", "b")
    assert usage.value.code == 2


def test_listings_show_no_token(cli: Cli, gateway: Gateway, names: tuple[str, str]) -> None:
    account, instance = names
    token = cli.ok("account", "create", account)["token"]
    cli.ok("token", "add", "--account", account)
    created = cli.ok(
        "instance", "create", instance, "--account", account, "--status", "disconnected"
    )
    status, out, _ = cli.run("account", "list")
    assert status == 0
    accounts = [json.loads(line) for line in out.splitlines()]
    [mine] = [a for a in accounts if a["name"] == account]
    assert list(mine) == ["name", "tokens", "created"] and mine["tokens"] == 2
    instances = cli.lines("instance", "list", "--account", account)
    assert [list(i) for i in instances] == [["name", "account", "status", "tokens", "created"]]
    assert instances[0] | {"created": None} == {
        "name": instance,
        "account": account,
        "status": "disconnected",
        "tokens": 1,
        "created": None,
    }
    assert instances[0]["created"].startswith("20")
    everything = out + json.dumps(cli.lines("instance", "list"))
    for secret in (token, hash_token(token), created["token"], hash_token(created["token"])):
        assert secret not in everything


def test_instance_delete_refuses_while_it_has_favorites(
    cli: Cli, gateway: Gateway, names: tuple[str, str]
) -> None:
    account, instance = names
    token = cli.ok("account", "create", account)["token"]
    cli.ok("instance", "create", instance, "--account", account)
    assert gateway.favorite(token, instance) == 200
    error = cli.fails("instance", "delete", instance)
    assert error == f"Instance {instance} has 1 favorite records; --purge deletes them with it"
    assert gateway.favorite(token, instance) == 200  # still there
    out = cli.ok("instance", "delete", instance, "--purge")
    assert out == {"instance": instance, "deleted": True, "favorites_deleted": 1}
    time.sleep(DEFAULT_CACHE_TTL + 0.2)
    assert gateway.favorite(token, instance) == 404
    assert cli.fails("instance", "delete", instance) == f"Instance not found: {instance}"
    # An instance without favorites goes without --purge.
    cli.ok("instance", "create", instance, "--account", account)
    assert cli.ok("instance", "delete", instance)["favorites_deleted"] == 0
