"""Phone numbers and WhatsApp JIDs, normalized to the JID a chat is stored under."""

from __future__ import annotations

import re

from favgate.errors import InvalidArgument
from favgate.resolvers.validation import require_text

USER_SERVER = "s.whatsapp.net"
# Servers whose JIDs are kept as they are, with the shape their local part must have.
# re.ASCII: a bare \d also matches non-ASCII digits (fullwidth, Arabic-Indic...), which
# never make a WhatsApp JID.
_KEPT_SERVERS = {
    USER_SERVER: re.compile(r"\d{7,15}", re.ASCII),
    "g.us": re.compile(r"\d{5,20}(-\d{5,20})?", re.ASCII),
    "lid": re.compile(r"\d{5,20}", re.ASCII),
    "broadcast": re.compile(r"status|\d{5,20}", re.ASCII),
    "newsletter": re.compile(r"\d{5,20}", re.ASCII),
}
_LEGACY_USER_SERVER = "c.us"
_FORMATTING = re.compile(r"[+\s\-.()]")
_E164 = re.compile(r"\d{7,15}", re.ASCII)
MAX_LENGTH = 64


def normalize_number(raw: str, argument: str = "number") -> str:
    """The chat JID for a phone number or JID; ``InvalidArgument`` when it is neither.

    ``argument`` names the input in error messages ("Invalid chatJid: ...").

    ``+55 (11) 99999-9999`` and ``5511999999999@c.us`` both become
    ``5511999999999@s.whatsapp.net``; group, LID, broadcast and newsletter JIDs are kept.
    """
    value = require_text(argument, raw.strip(), MAX_LENGTH)
    if "@" in value:
        return _normalize_jid(value, argument)
    digits = _FORMATTING.sub("", value)
    if not _E164.fullmatch(digits):
        reason = "expected a phone number of 7 to 15 digits or a WhatsApp JID"
        raise InvalidArgument(argument, reason)
    return f"{digits}@{USER_SERVER}"


def _normalize_jid(value: str, argument: str) -> str:
    local, _, server = value.rpartition("@")
    server = server.lower()
    if server == _LEGACY_USER_SERVER:
        server = USER_SERVER
    pattern = _KEPT_SERVERS.get(server)
    if pattern is None:
        raise InvalidArgument(argument, f"unsupported JID server @{server}")
    if server == USER_SERVER:
        local = _FORMATTING.sub("", local)
    if not pattern.fullmatch(local):
        raise InvalidArgument(argument, f"malformed JID for @{server}")
    return f"{local}@{server}"
