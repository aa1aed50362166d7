"""favgate's GraphQL schema."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from favgate.config import Settings
from favgate.metrics import OperationMetrics
from favgate.schema import limits
from favgate.schema.batch import FavoriteError
from favgate.schema.context import Context, build_context
from favgate.schema.errors import PublicErrors
from favgate.schema.names import CachedNameConverter
from favgate.schema.operations import Mutation, Query
from favgate.schema.runner import AnsweringExtensionsRunner
from favgate.schema.subscriptions import Subscription

__all__ = [
    "Context",
    "Schema",
    "build_context",
    "build_schema",
    "schema",
]

logger = logging.getLogger(__name__)


class Schema(strawberry.Schema):
    """Strawberry's schema, its errors logged once and subscriptions only over streams.

    Queries and mutations over HTTP run through ``favgate.graphql_http``; Strawberry runs
    what the WebSocket carries."""

    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        # Errors are the clients' (bad input, a bad token), not the server's: PublicErrors
        # already logged the few that are bugs, so they are not logged again here.
        for error in errors:
            logger.debug("GraphQL error: %s", error.message)

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        # Per streamed result, only the extensions with something to do (schema.runner).
        return AnsweringExtensionsRunner(execution_context, extensions)

    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        # Only the WebSocket streams (no HTTP stream transport is enabled), and it carries
        # subscriptions only: queries and mutations go over HTTP, where the rate limit is.
        return await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types=(OperationType.SUBSCRIPTION,),
        )


def build_schema(settings: Settings | None = None) -> Schema:
    """The schema, with the extensions ``settings`` call for (development by default)."""
    settings = Settings() if settings is None else settings
    schema = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # FavoriteError is only ever returned as a FavoriteOutcome: name it explicitly.
        types=[FavoriteError],
        # Classes or factories: Strawberry builds them per operation. The caches spare
        # the parse and validation (in limits, cached) of documents sent again and again.
        # OperationMetrics first, so that it sees the errors PublicErrors has mapped.
        extensions=[OperationMetrics, ParserCache, *limits.extensions(settings), PublicErrors],
        execution_context_class=limits.execution_context_class(settings),
        # Resolvers' argument names converted once, not on every call (schema.names).
        config=StrawberryConfig(name_converter=CachedNameConverter()),
    )
    return schema


# The default schema: its SDL is the committed schema.graphql, whatever the settings.
schema = build_schema()
