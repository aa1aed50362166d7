"""The one exception hierarchy of favgate.

Every expected failure is a ``FavgateError`` that knows its HTTP status, its public
message (the exact text of the REST contract) and its GraphQL ``extensions.code``. The
REST route maps it to a response in one place (``favgate.rest``) and the GraphQL schema
maps it to an error in one place (``favgate.schema.errors``)::

    FavgateError
    ├── BadRequest                  400  BAD_USER_INPUT
    │   ├── InstanceNameRequired         "Instance name is required"
    │   ├── InvalidRequestBody           "Invalid request body: <reason>"
    │   ├── TargetRequired               "Either number or messageId is required"
    │   ├── InvalidArgument              "Invalid <name>: <reason>"
    │   ├── InvalidCursor                "Invalid cursor"
    │   ├── InvalidGraphQLRequest        BAD_REQUEST  (not a GraphQL-over-HTTP request)
    │   ├── OperationNotFound            OPERATION_RESOLUTION_FAILURE
    │   ├── SubscriptionOverHttp         BAD_REQUEST  (subscriptions use the WebSocket)
    │   ├── PersistedQueryHashMismatch   PERSISTED_QUERY_HASH_MISMATCH
    │   └── TooCostly                    COST_EXCEEDS_BUDGET  (more than a whole budget)
    ├── InvalidToken                401  UNAUTHENTICATED  "Invalid token"
    ├── UntrustedDocument           403  PERSISTED_QUERY_NOT_ALLOWED  (trusted documents only)
    ├── NotFound                    404  NOT_FOUND
    │   ├── InstanceNotFound             "Instance not found"
    │   ├── MessageNotFound              "Message not found"
    │   ├── AccountNotFound              "Account not found"
    │   ├── WebhookNotFound              "Webhook not found"
    │   └── PersistedQueryNotFound       PERSISTED_QUERY_NOT_FOUND  (send the document)
    ├── MethodNotAllowed            405  METHOD_NOT_ALLOWED  (with ``Allow``)
    ├── Conflict                    409  CONFLICT  (creating what already exists)
    ├── PayloadTooLarge             413  PAYLOAD_TOO_LARGE  "Request body too large"
    ├── UnsupportedMediaType        415  UNSUPPORTED_MEDIA_TYPE
    │                                    "Content-Type must be application/json"
    ├── RateLimited                 429  RATE_LIMITED  "Rate limit exceeded. Try again later."
    ├── TooManySubscriptions        429  TOO_MANY_SUBSCRIPTIONS  "Subscription limit reached"
    ├── InstanceNotConnected        503  INSTANCE_NOT_CONNECTED
    ├── ServiceUnavailable          503  SERVICE_UNAVAILABLE  (database unreachable or late)
    └── ChangeStreamsUnavailable    503  SUBSCRIPTIONS_UNAVAILABLE  (no change streams)

Anything else that escapes a request is a bug: clients get a generic message and the log
keeps the detail (see ``public_error``).
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, PyMongoError


class FavgateError(Exception):
    """An expected failure with a public message."""

    status_code = 500
    code = "INTERNAL_SERVER_ERROR"
    message = "Internal server error"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)

    @property
    def extensions(self) -> dict[str, str]:
        """GraphQL error extensions; graphql-core copies them from the original error."""
        return {"code": self.code}

    @property
    def headers(self) -> dict[str, str]:
        """Response header fields the error calls for (``Allow``, ``Retry-After``)."""
        return {}


class BadRequest(FavgateError):
    status_code = 400
    code = "BAD_USER_INPUT"
    message = "Bad request"


class InstanceNameRequired(BadRequest):
    message = "Instance name is required"


class InvalidRequestBody(BadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid request body: {reason}")


class TargetRequired(BadRequest):
    message = "Either number or messageId is required"


class InvalidArgument(BadRequest):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"Invalid {name}: {reason}")


class InvalidCursor(BadRequest):
    message = "Invalid cursor"


class InvalidGraphQLRequest(BadRequest):
    """A ``/graphql`` request that is not GraphQL over HTTP: its body or parameters."""

    code = "BAD_REQUEST"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid GraphQL request: {reason}")


class OperationNotFound(BadRequest):
    code = "OPERATION_RESOLUTION_FAILURE"


class SubscriptionOverHttp(BadRequest):
    code = "BAD_REQUEST"
    message = "Subscriptions are served over the WebSocket at /graphql (graphql-transport-ws)"


class PersistedQueryHashMismatch(BadRequest):
    code = "PERSISTED_QUERY_HASH_MISMATCH"
    message = "provided sha does not match query"


class TooCostly(BadRequest):
    """An operation that costs more than a whole budget: it could never be admitted."""

    code = "COST_EXCEEDS_BUDGET"

    def __init__(self, cost: int, limit: int, window: int) -> None:
        super().__init__(
            f"This operation costs {cost} units, more than the whole budget of {limit} "
            f"per {window} s: split it into smaller operations"
        )


class InvalidToken(FavgateError):
    status_code = 401
    code = "UNAUTHENTICATED"
    message = "Invalid token"


class NotFound(FavgateError):
    status_code = 404
    code = "NOT_FOUND"
    message = "Not found"


class InstanceNotFound(NotFound):
    message = "Instance not found"


class MessageNotFound(NotFound):
    message = "Message not found"


class AccountNotFound(NotFound):
    message = "Account not found"


class WebhookNotFound(NotFound):
    message = "Webhook not found"


class PersistedQueryNotFound(NotFound):
    """An unknown document hash: Apollo's link then sends the document with its hash."""

    code = "PERSISTED_QUERY_NOT_FOUND"
    message = "PersistedQueryNotFound"


class UntrustedDocument(FavgateError):
    """A document outside the trusted documents manifest (``FAVGATE_TRUSTED_DOCUMENTS``)."""

    status_code = 403
    code = "PERSISTED_QUERY_NOT_ALLOWED"
    message = "Only the trusted documents of this gateway may run"


class MethodNotAllowed(FavgateError):
    status_code = 405
    code = "METHOD_NOT_ALLOWED"

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow}


class Conflict(FavgateError):
    status_code = 409
    code = "CONFLICT"
    message = "Already exists"


class PayloadTooLarge(FavgateError):
    """The body is over ``max_body_bytes`` (see ``favgate.bodylimit``)."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    message = "Request body too large"


class UnsupportedMediaType(FavgateError):
    """A body that is not JSON (see ``favgate.bodylimit``)."""

    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    message = "Content-Type must be application/json"


class RateLimited(FavgateError):
    """The budget cannot pay for the request (see ``favgate.ratelimit``); the response
    carries the budget's fields and ``Retry-After`` (``favgate.identity``)."""

    status_code = 429
    code = "RATE_LIMITED"
    message = "Rate limit exceeded. Try again later."


class TooManySubscriptions(FavgateError):
    """A connection or a token holds all the subscriptions it may (see ``favgate.websocket``)."""

    status_code = 429
    code = "TOO_MANY_SUBSCRIPTIONS"
    message = "Subscription limit reached"


class InstanceNotConnected(FavgateError):
    status_code = 503
    code = "INSTANCE_NOT_CONNECTED"
    message = "Instance is not connected to WhatsApp"


class ServiceUnavailable(FavgateError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    message = "Service temporarily unavailable"


class ChangeStreamsUnavailable(FavgateError):
    """The database cannot stream changes: a standalone server, not a replica set."""

    status_code = 503
    code = "SUBSCRIPTIONS_UNAVAILABLE"
    message = "Subscriptions need a MongoDB replica set: the database has no change streams"


class InternalError(FavgateError):
    """What a client sees in place of an unexpected exception."""


def public_error(exc: BaseException) -> FavgateError | None:
    """The error a client may see for ``exc``, or None when ``exc`` is a bug.

    A database that cannot be reached (gone, failing over: ``NotPrimaryError`` is a
    ``ConnectionFailure``) or that does not answer within the deadline (stalled, slow,
    replicas lagging: every error whose ``timeout`` is true, ``ExecutionTimeout`` and
    ``WTimeoutError`` included, see ``favgate.storage.driver``) is an expected, transient
    condition: it becomes a 503 rather than a masked 500, so that clients and load
    balancers retry. Any other database error (a refused command) is a bug.
    """
    if isinstance(exc, FavgateError):
        return exc
    if isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError) and exc.timeout):
        return ServiceUnavailable()
    return None
