"""The operator's commands: tokens, listings, deleting instances, merging chat aliases.

Each command is an ``Operation``: an async function of the storage and the parsed
arguments that answers the JSON objects ``favgate`` prints, one per line, or raises a
``FavgateError`` whose message it prints instead. ``add_commands`` registers them on the
command line's parser. A token to adopt or revoke is read from standard input, never from
an argument (which ``ps`` and shell histories would show), and is never printed back.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from favgate.auth import adopted_token, generate_token, hash_token
from favgate.config import Settings
from favgate.errors import FavgateError
from favgate.resolvers.aliases import AliasGroup, find_aliases, merge_aliases
from favgate.storage import Storage
from favgate.storage.directory import Listed, Owner

Document = dict[str, Any]
Operation = Callable[[Storage, argparse.Namespace], Awaitable[list[Document]]]
# A command line handler, as ``favgate.cli`` runs them.
Handler = Callable[[argparse.Namespace, Settings], int]
# What argparse's add_subparsers returns; its class is private.
Actions = Any


def add_commands(commands: Actions, account: Actions, instance: Actions, run: Handler) -> None:
    """Register the operator's commands under ``favgate``, ``account`` and ``instance``;
    ``run`` is the command line's handler that runs an ``Operation`` and prints it."""

    def register(parser: argparse.ArgumentParser, operation: Operation) -> argparse.ArgumentParser:
        parser.set_defaults(command=run, operation=operation)
        return parser

    register(account.add_parser("list", help="print the accounts"), _list_accounts)
    listing = register(instance.add_parser("list", help="print the instances"), _list_instances)
    listing.add_argument("--account")
    delete = register(instance.add_parser("delete", help="delete an instance"), _delete)
    delete.add_argument("name")
    delete.add_argument("--purge", action="store_true", help="with its favorite records")

    token = commands.add_parser("token", help="rotate and revoke tokens")
    actions = token.add_subparsers(required=True, metavar="ACTION")
    _owner_options(register(actions.add_parser("add", help="one more token"), _add_token))
    revoke = _owner_options(register(actions.add_parser("revoke", help="revoke"), _revoke))
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--token-stdin", action="store_true", help="the token to revoke")
    which.add_argument("--all", action="store_true", help="every token of the owner")

    favorites = commands.add_parser("favorites", help="maintain favorites")
    actions = favorites.add_subparsers(required=True, metavar="ACTION")
    merge = actions.add_parser("merge-aliases", help="favorites of one chat under two identities")
    register(merge, _merge_aliases)
    merge.add_argument("--instance", required=True)
    merge.add_argument("--apply", action="store_true", help="merge them into one record")


def add_token_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-stdin",
        action="store_true",
        help="adopt a token already issued, read from standard input (never printed)",
    )


async def new_token(storage: Storage, adopt: bool) -> tuple[str, str | None]:
    """The hash of a new owner's token, and the token when favgate made it (to print it):
    read from standard input with ``adopt``, refused if any owner holds it already."""
    if not adopt:
        token = generate_token()
        return hash_token(token), token
    token_hash = hash_token(adopted_token(sys.stdin.read()))
    if await storage.directory.token_in_use(token_hash):
        raise FavgateError("Token already in use")
    return token_hash, None


def _owner_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    owner = parser.add_mutually_exclusive_group(required=True)
    owner.add_argument("--account", metavar="NAME")
    owner.add_argument("--instance", metavar="NAME")
    return parser


def _owner(args: argparse.Namespace) -> tuple[Owner, str]:
    return ("account", args.account) if args.account is not None else ("instance", args.instance)


async def _list_accounts(storage: Storage, args: argparse.Namespace) -> list[Document]:
    return [_listed(found) for found in await storage.directory.list_accounts()]


async def _list_instances(storage: Storage, args: argparse.Namespace) -> list[Document]:
    return [_listed(found) for found in await storage.directory.list_instances(args.account)]


def _listed(found: Listed) -> Document:
    kind = {} if found.account is None else {"account": found.account, "status": found.status}
    created = None if found.created is None else found.created.isoformat()
    return {"name": found.name, **kind, "tokens": found.tokens, "created": created}


async def _delete(storage: Storage, args: argparse.Namespace) -> list[Document]:
    purged = await storage.directory.delete_instance(args.name, args.purge)
    if purged is None:
        raise FavgateError(f"Instance not found: {args.name}")
    return [{"instance": args.name, "deleted": True, "favorites_deleted": purged}]


async def _add_token(storage: Storage, args: argparse.Namespace) -> list[Document]:
    owner, name = _owner(args)
    token = generate_token()
    if not await storage.directory.add_token(owner, name, hash_token(token)):
        raise FavgateError(f"{owner.capitalize()} not found: {name}")
    return [{owner: name, "token": token}]


async def _revoke(storage: Storage, args: argparse.Namespace) -> list[Document]:
    owner, name = _owner(args)
    if args.all:
        revoked = await storage.directory.revoke_all(owner, name)
        if revoked is None:
            raise FavgateError(f"{owner.capitalize()} not found: {name}")
        return [{owner: name, "revoked": revoked}]
    token_hash = hash_token(adopted_token(sys.stdin.read()))
    if not await storage.directory.revoke_token(owner, name, token_hash):
        raise FavgateError(f"No such token of {owner} {name}")
    return [{owner: name, "revoked": 1}]


async def _merge_aliases(storage: Storage, args: argparse.Namespace) -> list[Document]:
    if await storage.directory.find_instance(args.instance) is None:
        raise FavgateError(f"Instance not found: {args.instance}")
    groups = await find_aliases(storage, args.instance)
    for group in groups if args.apply else ():
        await merge_aliases(storage, args.instance, group)
    return [_alias_line(group, args.apply) for group in groups]


def _alias_line(group: AliasGroup, applied: bool) -> Document:
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
