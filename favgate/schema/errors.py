"""The one mapping from exceptions to GraphQL errors.

A ``FavgateError`` keeps its public message and ``extensions.code`` (graphql-core copies
the original error's ``extensions``). A database outage becomes ``SERVICE_UNAVAILABLE``.
Anything else is a bug: the client sees "Unexpected error." and the log keeps the detail.
Parse and validation errors, and variables of the wrong type, are the client's and pass
through untouched.
"""

from __future__ import annotations

import logging

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from favgate.errors import FavgateError, InternalError, public_error

logger = logging.getLogger(__name__)


def public_or_masked(exc: BaseException) -> FavgateError:
    """What a client may see of ``exc``: its public error, or "Unexpected error." (logged).

    Also for errors raised while a subscription streams: Strawberry reports those without
    a path, so they must be made public before they leave the event stream.
    """
    public = public_error(exc)
    if public is None:
        logger.error("unexpected error in a GraphQL resolver", exc_info=exc)
        public = InternalError("Unexpected error.")
    elif not isinstance(exc, FavgateError):  # an outage: one line, as REST logs it
        logger.warning("database unavailable: %s", exc)
    return public


def _raised_by_a_resolver(error: GraphQLError) -> bool:
    # Only execution errors have a path. A variable that fails coercion ("yes" for a
    # Boolean!) has an original error too, graphql-core's own, but no path.
    return error.original_error is not None and error.path is not None


def _made_public(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    assert original is not None  # see _raised_by_a_resolver
    public = public_or_masked(original)
    return GraphQLError(
        message=public.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=public.extensions,
    )


def public_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    """What ``PublicErrors`` makes of a result's errors, for the HTTP transport
    (``favgate.graphql_http``), which runs no extension: the same loop as MaskErrors'."""
    return [_made_public(error) if _raised_by_a_resolver(error) else error for error in errors]


class PublicErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=_raised_by_a_resolver)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return _made_public(error)

    def _process_result(self, result: object) -> None:
        # MaskErrors' own test, ``isinstance`` of a runtime Protocol, is what that does
        # (has ``errors``) at ~50 times the cost, paid for every subscriber of a change.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]
