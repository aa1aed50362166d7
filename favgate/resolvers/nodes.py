"""Records found by their id alone (GraphQL's ``node``), under the tenant rules.

An id names a record of any instance, so the tenant check comes after the lookup: a
record of an instance the token does not reach answers None, exactly as an id that
matches nothing, so that ids cannot probe other tenants' records.
"""

from __future__ import annotations

from favgate.auth import Access
from favgate.storage import Favorite, Storage


async def favorite_by_id(
    storage: Storage, access: Access, favorite_id: str | None
) -> Favorite | None:
    """The favorite record ``favorite_id`` if the token reaches its instance, else None
    (also for None: an id that names no favorite). A bad token fails whatever the id."""
    await access.caller()
    if favorite_id is None:
        return None
    record = await storage.favorites.get_by_id(favorite_id)
    if record is None or await access.reachable(record.instance) is None:
        return None
    return record
