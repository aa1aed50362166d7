"""Domain operations, called by both the GraphQL schema and the REST route."""

from favgate.resolvers.batch import (
    MAX_ITEMS,
    FavoriteItem,
    ItemOutcome,
    check_batch_size,
    set_favorites,
)
from favgate.resolvers.favorites import (
    FavoritePage,
    FavoriteResult,
    Target,
    get_favorite,
    list_favorites,
    set_favorite,
)
from favgate.resolvers.jids import normalize_number
from favgate.resolvers.nodes import favorite_by_id
from favgate.resolvers.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_ITEMS",
    "MAX_PAGE_SIZE",
    "FavoriteItem",
    "FavoritePage",
    "FavoriteResult",
    "ItemOutcome",
    "Target",
    "check_batch_size",
    "favorite_by_id",
    "get_favorite",
    "list_favorites",
    "normalize_number",
    "set_favorite",
    "set_favorites",
]
