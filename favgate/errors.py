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
    │   └── InvalidCursor                "Invalid cursor"
    ├── InvalidToken                401  UNAUTHENTICATED  "Invalid token"
    ├── NotFound                    404  NOT_FOUND
    │   ├── InstanceNotFound             "Instance not found"
    │   ├── MessageNotFound              "Message not found"
    │   ├── AccountNotFound              "Account not found"
    │   └── WebhookNotFound              "Webhook not found"
    ├── Conflict                    409  CONFLICT  (creating what already exists)
    ├── PayloadTooLarge             413  PAYLOAD_TOO_LARGE  "Request body too large"
    ├── UnsupportedMediaType        415  UNSUPPORTED_MEDIA_TYPE
    │                                    "Content-Type must be application/json"
    ├── RateLimited                 429  RATE_LIMITED  "Rate limit exceeded. Try again later."
    ├── InstanceNotConnected        503  INSTANCE_NOT_CONNECTED
    ├── ServiceUnavailable          503  SERVICE_UNAVAILABLE  (database unreachable)
    └── ChangeStreamsUnavailable    503  SUBSCRIPTIONS_UNAVAILABLE  (no change streams)

Anything else that escapes a request is a bug: clients get a generic message and the log
keeps the detail (see ``public_error``).
"""

from __future__ import annotations

from pymongo.errors import ConnectionFailure


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
    """The token's budget is spent (see ``favgate.ratelimit``)."""

    status_code = 429
    code = "RATE_LIMITED"
    message = "Rate limit exceeded. Try again later."


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

    A database that cannot be reached is an expected, transient condition: it becomes a
    503 rather than a masked 500, so that clients and load balancers retry.
    """
    if isinstance(exc, FavgateError):
        return exc
    if isinstance(exc, ConnectionFailure):
        return ServiceUnavailable()
    return None
