"""``favgate favorites merge-aliases``: one record per chat for favorites written before
chat identities were resolved (``favgate.resolvers.identities``).

Before, a chat favorited as ``5511999999999`` and as ``551199999999``, or by its number
and by its LID, got a record per spelling. Records are grouped by the chat they name:

- the chat the instance's messages give them (by ``chat_jid`` or ``chat_jid_alt``), which
  is where the merged record goes;
- when no message names their chat, the spellings of one mobile (``candidates``) are one
  chat, and the merged record goes under the spelling of the latest record;
- when messages name two chats (both spellings of a mobile are in use), nothing is merged.

The merged record takes the state of the latest record of its group (``updated_at``);
the others are deleted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from favgate.resolvers.identities import candidates
from favgate.storage import Favorite, FavoriteTarget, FavoriteType, Sighting, Storage

# JIDs per identity lookup: a bound on the size of one command, not on the instance.
_LOOKUP_BATCH = 500


@dataclass(frozen=True, slots=True)
class AliasGroup:
    """The records of one chat, and where their merged record goes."""

    chat_jid: str
    records: tuple[Favorite, ...]

    @property
    def latest(self) -> Favorite:
        return max(self.records, key=_recency)

    @property
    def aliases(self) -> list[Favorite]:
        return [record for record in self.records if record.target.chat_jid != self.chat_jid]


async def find_aliases(storage: Storage, instance: str) -> list[AliasGroup]:
    """The chats of ``instance`` recorded under another identity than their own."""
    records = await storage.favorites.chat_records(instance)
    forms = {record.target.chat_jid: candidates(record.target.chat_jid) for record in records}
    wanted = sorted({form for group in forms.values() for form in group})
    sightings: dict[str, Sighting] = {}
    for start in range(0, len(wanted), _LOOKUP_BATCH):
        batch = wanted[start : start + _LOOKUP_BATCH]
        sightings |= await storage.chats.sightings(instance, batch)
    groups: dict[Hashable, list[Favorite]] = defaultdict(list)
    chats: dict[Hashable, str] = {}
    for record in records:
        key, chat = _chat(record.target.chat_jid, forms, sightings)
        groups[key].append(record)
        if chat is not None:
            chats[key] = chat
    found = [_group(chats.get(key), members) for key, members in groups.items()]
    return [group for group in found if group.aliases]


async def merge_aliases(storage: Storage, instance: str, group: AliasGroup) -> None:
    target = FavoriteTarget(type=FavoriteType.CHAT, chat_jid=group.chat_jid)
    aliases = [record.id for record in group.aliases]
    await storage.favorites.merge(instance, target, group.latest, aliases)


def _chat(
    jid: str, forms: Mapping[str, tuple[str, ...]], sightings: Mapping[str, Sighting]
) -> tuple[Hashable, str | None]:
    """The key of ``jid``'s group, and its chat if the messages name one."""
    group = forms[jid] or (jid,)
    named = {chat for form in group for chat in sightings.get(form, Sighting()).chats}
    if len(named) == 1:
        chat = named.pop()
        return ("chat", chat), chat
    if named:  # two live chats: not aliases of each other
        return ("own", jid), None
    return ("forms", frozenset(group)), None


def _group(chat: str | None, records: list[Favorite]) -> AliasGroup:
    latest = max(records, key=_recency)
    return AliasGroup(chat_jid=chat or latest.target.chat_jid, records=tuple(records))


def _recency(record: Favorite) -> tuple[object, str]:
    return record.updated_at, record.id
