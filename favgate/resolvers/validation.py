"""Checks every free-text argument passes, whichever API it came through."""

from __future__ import annotations

from favgate.errors import InvalidArgument


def require_text(name: str, value: str, max_length: int) -> str:
    """``value`` if it is short enough and encodable; ``InvalidArgument`` otherwise.

    JSON and GraphQL escapes can spell lone surrogates ("\\ud800"), which neither BSON
    nor a UTF-8 response can carry: they are refused here rather than failing deeper.
    """
    if len(value) > max_length:
        raise InvalidArgument(name, f"must be at most {max_length} characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidArgument(name, "must be valid Unicode") from None
    return value
