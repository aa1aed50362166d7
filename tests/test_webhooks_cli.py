"""``favgate webhook add|list|remove``, in process, against a real database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import with_database
from pymongo import MongoClient

from favgate.cli import main

URL = "http://127.0.0.1:9/hooks"


@pytest.fixture
def cli_uri(mongodb_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = with_database(mongodb_uri, f"favgate_cli_webhooks_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("MONGODB_URI", uri)
    monkeypatch.setenv("FAVGATE_WEBHOOK_ALLOW_PRIVATE", "true")
    yield uri
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    with client:
        client.drop_database(client.get_default_database())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """The exit status and the JSON printed: on stdout when 0, else on stderr."""
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert (out if status else err) == ""
    return status, json.loads(err if status else out)


@pytest.fixture
def instance(capsys: pytest.CaptureFixture[str], cli_uri: str) -> None:
    assert run(capsys, "account", "create", "acme")[0] == 0
    assert run(capsys, "instance", "create", "main", "--account", "acme")[0] == 0
    assert run(capsys, "instance", "create", "other", "--account", "acme")[0] == 0


def test_add_list_remove(capsys: pytest.CaptureFixture[str], instance: None) -> None:
    status, added = run(capsys, "webhook", "add", "--instance", "main", "--url", URL)
    assert status == 0
    assert list(added) == ["id", "instance", "url", "secret"]
    assert (added["instance"], added["url"]) == ("main", URL)
    assert added["secret"].startswith("whsec_")
    _, other = run(capsys, "webhook", "add", "--instance", "other", "--url", URL + "/2")

    status, listing = run(capsys, "webhook", "list")
    assert status == 0
    assert [w["id"] for w in listing["webhooks"]] == [added["id"], other["id"]]
    first = listing["webhooks"][0]
    assert {k: first[k] for k in ("instance", "url", "pending", "failed", "last_error")} == {
        "instance": "main",
        "url": URL,
        "pending": 0,
        "failed": 0,
        "last_error": None,
    }
    assert added["secret"] not in json.dumps(listing), "the secret is shown once"
    _, listing = run(capsys, "webhook", "list", "--instance", "other")
    assert [w["id"] for w in listing["webhooks"]] == [other["id"]]

    assert run(capsys, "webhook", "remove", added["id"]) == (0, {"removed": added["id"]})
    assert run(capsys, "webhook", "remove", added["id"]) == (1, {"error": "Webhook not found"})
    _, listing = run(capsys, "webhook", "list")
    assert [w["id"] for w in listing["webhooks"]] == [other["id"]]


def test_add_refuses_what_it_cannot_send_to(
    capsys: pytest.CaptureFixture[str], instance: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "webhook", "add", "--instance", "nope", "--url", URL) == (
        1,
        {"error": "Instance not found: nope"},
    )
    assert run(capsys, "webhook", "add", "--instance", "main", "--url", "ftp://x.example") == (
        1,
        {"error": "Invalid url: must be an http or https URL"},
    )
    monkeypatch.delenv("FAVGATE_WEBHOOK_ALLOW_PRIVATE")
    assert run(capsys, "webhook", "add", "--instance", "main", "--url", URL) == (
        1,
        {"error": "Invalid url: its host resolves to a non-public address (127.0.0.1)"},
    )
    assert run(capsys, "webhook", "list") == (0, {"webhooks": []})
