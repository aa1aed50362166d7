"""One chat, one identity: the JID a number or JID names, as the instance knows the chat.

WhatsApp's chat identities do not follow E.164. Some countries' mobiles have two spellings
(``MOBILE_RULES``), and a chat may be known by its LID (``...@lid``) with its phone-number
JID as an alternate, or the other way round (a message's ``chat_jid_alt``). favgate cannot
ask WhatsApp which is right, so it asks the instance's own data, once per cold JID
(``Chats.sightings``), and picks with ``pick``:

1. the chat a message names, by its ``chat_jid`` or ``chat_jid_alt``, when the candidates
   lead to exactly one;
2. else the candidate an existing chat favorite is recorded under, when exactly one is;
3. else (nothing known, or several) the form given.

Groups, broadcasts and newsletters have one identity and are never looked up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from favgate.resolvers.jids import USER_SERVER
from favgate.storage import Sighting, Storage

LID_SERVER = "lid"


@dataclass(frozen=True, slots=True)
class MobileRule:
    """A country whose mobiles are written with or without one extra digit, inserted
    after the area code (if any): ``country + area + [extra] + subscriber``."""

    country: str
    area: str  # a pattern; empty when the extra digit follows the country code
    extra: str
    subscriber: str  # a pattern
    _short: re.Pattern[str] = field(init=False, repr=False)
    _long: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        head = f"{self.country}({self.area})"
        # ASCII: \d would match other scripts' digits too (normalize_number refuses them).
        short = re.compile(f"{head}({self.subscriber})", re.ASCII)
        long = re.compile(f"{head}{self.extra}({self.subscriber})", re.ASCII)
        object.__setattr__(self, "_short", short)
        object.__setattr__(self, "_long", long)

    def other_form(self, digits: str) -> str | None:
        """The other spelling of ``digits`` when it is one of this rule's mobiles."""
        if not digits.startswith(self.country):  # both patterns start with it: no match
            return None
        if short := self._short.fullmatch(digits):
            return f"{self.country}{short[1]}{self.extra}{short[2]}"
        if long := self._long.fullmatch(digits):
            return f"{self.country}{long[1]}{long[2]}"
        return None


# The one table of countries with two spellings of a mobile; landlines match no rule.
MOBILE_RULES = (
    # Brazil: 55, a two-digit area code, then 8 digits from 6 to 9, or 9 and those 8.
    MobileRule(country="55", area="[1-9]{2}", extra="9", subscriber="[6-9][0-9]{7}"),
    # Mexico: 52 and 10 digits, or 521 and those 10.
    MobileRule(country="52", area="", extra="1", subscriber="[2-9][0-9]{9}"),
)


def candidates(jid: str) -> tuple[str, ...]:
    """The JIDs that may name the same chat as ``jid``, ``jid`` first; () when a chat of
    its server has one identity only and needs no lookup."""
    local, _, server = jid.partition("@")
    if server == LID_SERVER:
        return (jid,)
    if server != USER_SERVER:
        return ()
    for rule in MOBILE_RULES:
        other = rule.other_form(local)
        if other is not None:
            return (jid, f"{other}@{USER_SERVER}")
    return (jid,)


def pick(given: str, forms: Sequence[str], sightings: Mapping[str, Sighting]) -> str:
    """The chat among what ``forms`` are known as (see the module docstring)."""
    chats = {chat for form in forms for chat in sightings[form].chats}
    if len(chats) == 1:
        return chats.pop()
    if chats:
        return given
    favorited = [form for form in forms if sightings[form].favorited]
    return favorited[0] if len(favorited) == 1 else given


async def resolve_chat(storage: Storage, instance: str, jid: str) -> str:
    """The chat ``jid`` names in ``instance``."""
    return (await resolve_chats(storage, instance, [jid]))[jid]


async def resolve_chats(storage: Storage, instance: str, jids: Sequence[str]) -> dict[str, str]:
    """The chat each of ``jids`` names in ``instance``, with one query for all the cold ones."""
    forms = {jid: candidates(jid) for jid in jids}
    wanted = [form for group in forms.values() for form in group]
    sightings = await storage.chats.sightings(instance, wanted) if wanted else {}
    return {jid: pick(jid, group, sightings) if group else jid for jid, group in forms.items()}
