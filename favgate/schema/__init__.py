"""favgate's GraphQL schema."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache

from favgate.config import Settings
from favgate.schema.context import Context, GraphQLView, build_context
from favgate.schema.errors import PublicErrors
from favgate.schema.operations import Mutation, Query

__all__ = ["Context", "GraphQLView", "Schema", "build_context", "build_schema", "schema"]

logger = logging.getLogger(__name__)


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        # Errors are the clients' (bad input, a bad token), not the server's: PublicErrors
        # already logged the few that are bugs, so they are not logged again here.
        for error in errors:
            logger.debug("GraphQL error: %s", error.message)


def build_schema(settings: Settings | None = None) -> Schema:
    """The schema, with the extensions ``settings`` call for (development by default)."""
    return Schema(
        query=Query,
        mutation=Mutation,
        # Classes, not instances: Strawberry builds them per operation. The caches spare
        # the parse and validation of documents a client sends again and again.
        extensions=[ParserCache, ValidationCache, PublicErrors],
    )


# The default schema: its SDL is the committed schema.graphql, whatever the settings.
schema = build_schema()
