"""The ``favgate`` command line.

Every command that creates something prints one JSON object on stdout, and every listing
one JSON object per line, so scripts can read them; errors go to stderr as
``{"error": ...}`` with exit status 1 (2 for usage and configuration errors). Each
command uses ``MONGODB_URI`` when it is set, else the embedded database under
``--data-dir``, which it finds running or starts for itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, TypeVar

from pymongo.errors import PyMongoError

from favgate import demo
from favgate.auth import adopted_token, generate_token, hash_token
from favgate.config import ConfigError, Settings
from favgate.embedded import EmbeddedDatabaseError, embedded_database
from favgate.errors import FavgateError
from favgate.importing import InvalidLine, parse_messages
from favgate.logs import configure_logging
from favgate.resolvers.aliases import AliasGroup, find_aliases, merge_aliases
from favgate.storage import InstanceStatus, Storage, open_storage
from favgate.storage.directory import Listed, Owner

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
    _token_stdin(create_account)
    create_account.set_defaults(command=_create_account)
    account.add_parser("list", help="print the accounts").set_defaults(command=_list_accounts)

    instance = commands.add_parser("instance", help="manage instances").add_subparsers(
        required=True, metavar="ACTION"
    )
    create_instance = instance.add_parser("create", help="create an instance and its token")
    create_instance.add_argument("name")
    create_instance.add_argument("--account", required=True)
    create_instance.add_argument("--status", choices=STATUSES, default="connected")
    _token_stdin(create_instance)
    create_instance.set_defaults(command=_create_instance)
    list_instances = instance.add_parser("list", help="print the instances")
    list_instances.add_argument("--account")
    list_instances.set_defaults(command=_list_instances)
    delete = instance.add_parser("delete", help="delete an instance")
    delete.add_argument("name")
    delete.add_argument("--purge", action="store_true", help="with its favorites")
    delete.set_defaults(command=_delete_instance)
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

    token = commands.add_parser("token", help="rotate and revoke tokens").add_subparsers(
        required=True, metavar="ACTION"
    )
    add = _owner_options(token.add_parser("add", help="give an owner one more token"))
    add.set_defaults(command=_add_token)
    revoke = _owner_options(token.add_parser("revoke", help="revoke a token, or all"))
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--token-stdin", action="store_true", help="the token to revoke")
    which.add_argument("--all", action="store_true", help="every token of the owner")
    revoke.set_defaults(command=_revoke_token)

    favorites = commands.add_parser("favorites", help="maintain favorites").add_subparsers(
        required=True, metavar="ACTION"
    )
    merge = favorites.add_parser(
        "merge-aliases", help="find favorites of one chat under two identities"
    )
    merge.add_argument("--instance", required=True)
    merge.add_argument("--apply", action="store_true", help="merge them into one")
    merge.set_defaults(command=_merge_aliases)

    commands.add_parser("schema", help="print the GraphQL SDL").set_defaults(command=_schema)
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
    )
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: Ctrl-C is a normal stop
        Server(config).run()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _token_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-stdin",
        action="store_true",
        help="adopt a token already issued, read from standard input (never printed)",
    )


def _owner_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    owner = parser.add_mutually_exclusive_group(required=True)
    owner.add_argument("--account", metavar="NAME")
    owner.add_argument("--instance", metavar="NAME")
    return parser


def _new_token(args: argparse.Namespace) -> tuple[str, str | None]:
    """The hash of the command's token, and the token if favgate made it (to print)."""
    if args.token_stdin:
        return hash_token(adopted_token(sys.stdin.read())), None
    token = generate_token()
    return hash_token(token), token


async def _unused(storage: Storage, token_hash: str) -> str:
    if await storage.directory.token_in_use(token_hash):
        raise FavgateError("Token already in use")
    return token_hash


def _create_account(args: argparse.Namespace, settings: Settings) -> int:
    token_hash, token = _new_token(args)

    async def create(storage: Storage) -> None:
        await storage.directory.create_account(args.name, await _unused(storage, token_hash))

    _run(settings, create)
    return _print({"account": args.name} | ({} if token is None else {"token": token}))


def _create_instance(args: argparse.Namespace, settings: Settings) -> int:
    token_hash, token = _new_token(args)

    async def create(storage: Storage) -> None:
        status = InstanceStatus(args.status)
        token = await _unused(storage, token_hash)
        await storage.directory.create_instance(args.name, args.account, status, token)

    _run(settings, create)
    created = {"instance": args.name, "account": args.account, "status": args.status}
    return _print(created | ({} if token is None else {"token": token}))


def _list_accounts(args: argparse.Namespace, settings: Settings) -> int:
    return _print_lines(_listed(found) for found in _run(settings, _accounts))


async def _accounts(storage: Storage) -> list[Listed]:
    return await storage.directory.list_accounts()


def _list_instances(args: argparse.Namespace, settings: Settings) -> int:
    async def instances(storage: Storage) -> list[Listed]:
        return await storage.directory.list_instances(args.account)

    return _print_lines(_listed(found) for found in _run(settings, instances))


def _listed(found: Listed) -> dict[str, Any]:
    kind = {} if found.account is None else {"account": found.account, "status": found.status}
    created = None if found.created is None else found.created.isoformat()
    return {"name": found.name, **kind, "tokens": found.tokens, "created": created}


def _delete_instance(args: argparse.Namespace, settings: Settings) -> int:
    async def delete(storage: Storage) -> int | None:
        return await storage.directory.delete_instance(args.name, args.purge)

    purged = _run(settings, delete)
    if purged is None:
        return _fail(f"Instance not found: {args.name}")
    return _print({"instance": args.name, "deleted": True, "favorites_deleted": purged})


def _owner(args: argparse.Namespace) -> tuple[Owner, str]:
    return ("account", args.account) if args.account is not None else ("instance", args.instance)


def _add_token(args: argparse.Namespace, settings: Settings) -> int:
    owner, name = _owner(args)
    token = generate_token()

    async def add(storage: Storage) -> bool:
        return await storage.directory.add_token(owner, name, hash_token(token))

    if not _run(settings, add):
        return _fail(f"{owner.capitalize()} not found: {name}")
    return _print({owner: name, "token": token})


def _revoke_token(args: argparse.Namespace, settings: Settings) -> int:
    owner, name = _owner(args)
    # Read before the database is touched: a bad token changes nothing.
    token_hash = None if args.all else hash_token(adopted_token(sys.stdin.read()))

    async def revoke(storage: Storage) -> int | None:
        if token_hash is None:
            return await storage.directory.revoke_all(owner, name)
        return int(await storage.directory.revoke_token(owner, name, token_hash)) or None

    revoked = _run(settings, revoke)
    if revoked is None:
        return _fail(f"No such token of {owner} {name}" if token_hash else f"Not found: {name}")
    return _print({owner: name, "revoked": revoked})


def _merge_aliases(args: argparse.Namespace, settings: Settings) -> int:
    async def merge(storage: Storage) -> list[AliasGroup]:
        if await storage.directory.find_instance(args.instance) is None:
            raise FavgateError(f"Instance not found: {args.instance}")
        groups = await find_aliases(storage, args.instance)
        for group in groups if args.apply else ():
            await merge_aliases(storage, args.instance, group)
        return groups

    return _print_lines(_alias_line(group, args.apply) for group in _run(settings, merge))


def _alias_line(group: AliasGroup, applied: bool) -> dict[str, Any]:
    records = [
        {
            "chat_jid": record.target.chat_jid,
            "favorite": record.favorite,
            "updated_at": record.updated_at.isoformat(),
        }
        for record in group.records
    ]
    latest = group.latest.favorite
    return {"chat_jid": group.chat_jid, "favorite": latest, "records": records, "applied": applied}


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


def _print_lines(documents: Iterable[dict[str, Any]]) -> int:
    for document in documents:
        print(json.dumps(document))
    return 0


def _fail(message: str, status: int = 1) -> int:
    print(json.dumps({"error": message}), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
