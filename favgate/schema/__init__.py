"""favgate's GraphQL schema."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, execute
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.extensions import ParserCache
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, StreamResult
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe

from favgate.config import Settings
from favgate.metrics import OperationMetrics, count_operation
from favgate.schema import limits
from favgate.schema.batch import FavoriteError
from favgate.schema.context import Context, GraphQLView, build_context
from favgate.schema.errors import PublicErrors, public_errors
from favgate.schema.known import KnownOperations, Operation, pick_operation, stands_in_for
from favgate.schema.operations import Mutation, Query
from favgate.schema.subscriptions import Subscription

__all__ = [
    "Context",
    "GraphQLView",
    "Schema",
    "build_context",
    "build_schema",
    "schema",
]

logger = logging.getLogger(__name__)


class Schema(strawberry.Schema):
    # Documents found valid, run without the extensions (favgate.schema.known); None:
    # every operation takes Strawberry's whole path.
    known_operations: KnownOperations | None = None

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        known = self.known_operations
        document = None if known is None else known.get(query)
        if document is not None:
            allowed = allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES
            operation = pick_operation(document, operation_name, allowed)
            if operation is not None:
                return await self._execute_known(
                    document,
                    operation,
                    variable_values,
                    context_value,
                    root_value,
                    operation_extensions,
                )
        return await super().execute(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )

    async def _execute_known(
        self,
        document: DocumentNode,
        operation: Operation,
        variable_values: dict[str, Any] | None,
        context_value: Any | None,
        root_value: Any | None,
        operation_extensions: dict[str, Any] | None,
    ) -> ExecutionResult:
        """What Strawberry's execute does for a valid document, less the extensions."""
        try:
            executed = await await_maybe(
                execute(
                    self._schema,
                    document,
                    root_value=root_value,
                    context_value=context_value,
                    variable_values=variable_values,
                    operation_name=operation.name,
                    executor_class=self.execution_context_class,
                    # Strawberry's check, as Strawberry passes it (typed bool, not TypeGuard).
                    is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
                    operation_extensions=operation_extensions,
                )
            )
            data, errors = executed.data, executed.errors
        except Exception as exc:  # as Strawberry does: an error of the result
            data, errors = None, [GraphQLError(str(exc), original_error=exc)]
        if errors:
            self._process_errors(errors)  # logged before they are made public
        result = ExecutionResult(data=data, errors=errors, extensions={})
        # What the operation hooks do on the way out: PublicErrors', then OperationMetrics'.
        if result.errors:
            result.errors = public_errors(result.errors)
        count_operation(operation.type.value, operation.name, result)
        return result

    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        # Errors are the clients' (bad input, a bad token), not the server's: PublicErrors
        # already logged the few that are bugs, so they are not logged again here.
        for error in errors:
            logger.debug("GraphQL error: %s", error.message)

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
    )
    if stands_in_for(schema.extensions) and not schema.directives:
        schema.known_operations = KnownOperations()
    return schema


# The default schema: its SDL is the committed schema.graphql, whatever the settings.
schema = build_schema()
