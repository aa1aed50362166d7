"""The ``favgate`` command line.

Every command that creates something prints one JSON object on stdout, and a listing one
per line, so scripts can read them; errors go to stderr as ``{"error": ...}`` with exit
status 1 (2 for usage and configuration errors). The operator's commands on tokens,
listings and maintenance are in ``favgate.admin``. Each command uses ``MONGODB_URI`` when
it is set, else the embedded database under ``--data-dir``, which it finds running or
starts for itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, TypeVar

from pymongo.errors import PyMongoError

from favgate import admin, demo
from favgate.config import ConfigError, Settings
from favgate.embedded import EmbeddedDatabaseError, embedded_database
from favgate.errors import FavgateError
from favgate.importing import InvalidLine, parse_messages
from favgate.logs import configure_logging
from favgate.resolvers.webhooks import WebhookStatus, add_webhook, list_webhooks, remove_webhook
from favgate.storage import InstanceStatus, Storage, Webhook, open_storage

STATUSES = [status.value for status in InstanceStatus]
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.data_dir is not None:
            settings = settings.replace(data_dir=args.data_dir)
        return int(args.command(args, settings))
    except ConfigError as exc:
        return _fail(str(exc), status=2)
    except (FavgateError, InvalidLine, EmbeddedDatabaseError) as exc:
        return _fail(str(exc))
    except PyMongoError as exc:  # unreachable database, refused write, ...
        return _fail(f"Database error: {exc}")
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="favgate", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="embedded database directory")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    # SUPPRESS: an absent option here must not override one given before "serve".
    serve.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS)
    serve.add_argument("--demo", action="store_true", help="seed demo data and print tokens")
    serve.set_defaults(command=_serve)

    account = commands.add_parser("account", help="manage accounts").add_subparsers(
        required=True, metavar="ACTION"
    )
    create_account = account.add_parser("create", help="create an account and its token")
    create_account.add_argument("name")
    admin.add_token_stdin(create_account)
    create_account.set_defaults(command=_create_account)

    instance = commands.add_parser("instance", help="manage instances").add_subparsers(
        required=True, metavar="ACTION"
    )
    create_instance = instance.add_parser("create", help="create an instance and its token")
    create_instance.add_argument("name")
    create_instance.add_argument("--account", required=True)
    create_instance.add_argument("--status", choices=STATUSES, default="connected")
    admin.add_token_stdin(create_instance)
    create_instance.set_defaults(command=_create_instance)
    status = instance.add_parser("status", help="set an instance's connection status")
    status.add_argument("name")
    status.add_argument("status", choices=STATUSES)
    status.set_defaults(command=_set_status)

    messages = commands.add_parser("messages", help="manage messages").add_subparsers(
        required=True, metavar="ACTION"
    )
    import_messages = messages.add_parser("import", help="import messages from JSON Lines")
    import_messages.add_argument("--instance", required=True)
    import_messages.add_argument("file", help="a JSON Lines file, or - for stdin")
    import_messages.set_defaults(command=_import_messages)

    commands.add_parser("schema", help="print the GraphQL SDL").set_defaults(command=_schema)
    admin.add_commands(commands, account, instance, run=_operate)
    _webhook_parser(commands)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.replace(host=args.host or settings.host, port=args.port or settings.port)
    configure_logging(settings.log_level)  # JSON lines on stderr, each with its request id
    # uvicorn drains requests on SIGTERM, then re-raises the signal; turning it into
    # SystemExit lets the embedded database stop cleanly on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with _database(settings) as settings:
        banner = None
        if args.demo:
            tokens = asyncio.run(_with_storage(settings, demo.seed))
            banner = demo.banner(tokens, f"http://{settings.host}:{settings.port}")
        _run_server(settings, banner)
    return 0


def _run_server(settings: Settings, banner: str | None) -> None:
    """Run uvicorn (as ``uvicorn.run`` would), printing banner once it accepts requests."""
    import uvicorn

    from favgate.app import create_app
    from favgate.wsprotocol import websocket_options

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            # Only now is the banner's curl command answered rather than refused.
            if self.started and banner is not None:
                print(banner, flush=True)

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # keep favgate's JSON logging (configure_logging) for uvicorn's too
        timeout_graceful_shutdown=30,
        **websocket_options(settings),
    )
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is a normal stop
        Server(config).run()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _create_account(args: argparse.Namespace, settings: Settings) -> int:
    async def create(storage: Storage) -> str | None:
        token_hash, token = await admin.new_token(storage, args.token_stdin)
        await storage.directory.create_account(args.name, token_hash)
        return token

    token = _run(settings, create)
    return _print({"account": args.name} | _shown(token))


def _create_instance(args: argparse.Namespace, settings: Settings) -> int:
    async def create(storage: Storage) -> str | None:
        token_hash, token = await admin.new_token(storage, args.token_stdin)
        status = InstanceStatus(args.status)
        await storage.directory.create_instance(args.name, args.account, status, token_hash)
        return token

    token = _run(settings, create)
    created = {"instance": args.name, "account": args.account, "status": args.status}
    return _print(created | _shown(token))


def _shown(token: str | None) -> dict[str, str]:
    """The token to print: one favgate made, never one adopted."""
    return {} if token is None else {"token": token}


def _operate(args: argparse.Namespace, settings: Settings) -> int:
    async def operate(storage: Storage) -> list[dict[str, Any]]:
        return await args.operation(storage, args)  # type: ignore[no-any-return]

    for document in _run(settings, operate):
        _print(document)
    return 0


def _set_status(args: argparse.Namespace, settings: Settings) -> int:
    async def set_status(storage: Storage) -> bool:
        return await storage.directory.set_instance_status(args.name, InstanceStatus(args.status))

    if not _run(settings, set_status):
        return _fail(f"Instance not found: {args.name}")
    return _print({"instance": args.name, "status": args.status})


def _import_messages(args: argparse.Namespace, settings: Settings) -> int:
    with _open_input(args.file) as lines:
        messages = parse_messages(lines)

    async def upsert(storage: Storage) -> int:
        if await storage.directory.find_instance(args.instance) is None:
            raise FavgateError(f"Instance not found: {args.instance}")
        return await storage.messages.upsert_many(args.instance, messages)

    return _print({"imported": _run(settings, upsert)})


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from favgate.schema import schema

    print(schema.as_str())
    return 0


def _webhook_parser(commands: Any) -> None:
    webhook = commands.add_parser("webhook", help="manage webhook endpoints").add_subparsers(
        required=True, metavar="ACTION"
    )
    add = webhook.add_parser("add", help="add an endpoint; prints its id and signing secret")
    add.add_argument("--instance", required=True)
    add.add_argument("--url", required=True)
    add.set_defaults(command=_add_webhook)
    listing = webhook.add_parser("list", help="list endpoints and their pending/failed deliveries")
    listing.add_argument("--instance")
    listing.set_defaults(command=_list_webhooks)
    remove = webhook.add_parser("remove", help="remove an endpoint and its pending deliveries")
    remove.add_argument("id")
    remove.set_defaults(command=_remove_webhook)


def _add_webhook(args: argparse.Namespace, settings: Settings) -> int:
    async def add(storage: Storage) -> Webhook:
        instance = await storage.directory.find_instance(args.instance)
        if instance is None:
            raise FavgateError(f"Instance not found: {args.instance}")
        return await add_webhook(storage, instance, args.url, settings.webhook_allow_private)

    webhook = _run(settings, add)
    # The secret is shown this once: signing needs it, listing never shows it.
    return _print(
        {
            "id": webhook.id,
            "instance": webhook.instance,
            "url": webhook.url,
            "secret": webhook.secret,
        }
    )


def _list_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    async def listing(storage: Storage) -> list[WebhookStatus]:
        return await list_webhooks(storage, args.instance)

    return _print({"webhooks": [_webhook_json(status) for status in _run(settings, listing)]})


def _webhook_json(status: WebhookStatus) -> dict[str, Any]:
    webhook, stats = status.webhook, status.stats
    return {
        "id": webhook.id,
        "instance": webhook.instance,
        "url": webhook.url,
        "created_at": webhook.created_at.isoformat(),
        "pending": stats.pending,
        "failed": stats.failed,
        "last_error": stats.last_error,
    }


def _remove_webhook(args: argparse.Namespace, settings: Settings) -> int:
    async def remove(storage: Storage) -> None:
        await remove_webhook(storage, args.id)

    _run(settings, remove)
    return _print({"removed": args.id})


def _run(settings: Settings, operation: Callable[[Storage], Awaitable[T]]) -> T:
    with _database(settings) as ready:
        return asyncio.run(_with_storage(ready, operation))


async def _with_storage(settings: Settings, operation: Callable[[Storage], Awaitable[T]]) -> T:
    storage = open_storage(settings)
    try:
        await storage.ensure_indexes()
        return await operation(storage)
    finally:
        await storage.close()


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[Settings]:
    """``settings`` pointing at a database: MONGODB_URI, else the embedded one."""
    if settings.mongodb_uri is not None:
        yield settings
        return
    with embedded_database(settings.data_dir) as uri:
        yield settings.with_uri(uri)


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdin
        return
    try:
        with open(path, encoding="utf-8") as file:
            yield file
    except OSError as exc:
        raise FavgateError(f"Cannot read {path}: {exc.strerror}") from None


def _print(document: dict[str, Any]) -> int:
    print(json.dumps(document))
    return 0


def _fail(message: str, status: int = 1) -> int:
    print(json.dumps({"error": message}), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
