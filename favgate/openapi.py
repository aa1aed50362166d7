"""The OpenAPI 3.1 document of the REST route and the health probes, on ``GET /openapi.json``.

Built once, at import, from the same constants the code answers with (messages, length
caps), and checked against the live app by ``tests/test_openapi.py`` (schemathesis): every
status the route can answer is here, with the exact body it carries.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from favgate import __version__, errors
from favgate.resolvers.favorites import MAX_MESSAGE_ID_LENGTH
from favgate.resolvers.jids import MAX_LENGTH as MAX_NUMBER_LENGTH

JSON = "application/json"
SUCCESS_MESSAGES = [
    "Chat favorited successfully",
    "Chat unfavorited successfully",
    "Message favorited successfully",
    "Message unfavorited successfully",
]
RATE_LIMIT_HEADERS = ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


def _error(description: str, *messages: str, pattern: str | None = None) -> dict[str, Any]:
    """A response in the contract's error shape whose message is one of ``messages`` (or
    matches ``pattern``)."""
    choices: list[dict[str, Any]] = [{"enum": list(messages)}] if messages else []
    if pattern is not None:
        choices.append({"pattern": pattern})
    message = {"type": "string", "anyOf": choices} if len(choices) > 1 else choices[0]
    return _json_response(description, {"$ref": "#/components/schemas/Error"}, message)


def _json_response(
    description: str, schema: dict[str, Any], message: dict[str, Any] | None = None
) -> dict[str, Any]:
    if message is not None:  # narrow the shared error shape to this status's messages
        schema = {
            "allOf": [schema],
            "properties": {"error": {"properties": {"message": message}}},
        }
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _rate_limited() -> dict[str, Any]:
    response = _error("Rate limit exceeded", errors.RateLimited.message)
    response["headers"] = {
        "Retry-After": {
            "description": "Whole seconds until the request would fit the budget.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    }
    return response


def _favorite_responses() -> dict[str, Any]:
    budget = {
        name: {
            "description": "The token's rate limit budget (requests with a known token).",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
        for name in RATE_LIMIT_HEADERS
    }
    success = _json_response("The final state", {"$ref": "#/components/schemas/FavoriteResult"})
    return {
        "200": {**success, "headers": budget},
        "400": _error(
            "Bad request: no instance name, a malformed body, no target, a bad number or id",
            errors.InstanceNameRequired.message,
            errors.TargetRequired.message,
            pattern="^Invalid (request body|number|messageId): .+",
        ),
        "401": _error("No token, or a token favgate does not know", errors.InvalidToken.message),
        "404": _error(
            "No such instance, or not one the token reaches (indistinguishable); no such message",
            errors.InstanceNotFound.message,
            errors.MessageNotFound.message,
        ),
        "413": _error("The body is over the size cap", errors.PayloadTooLarge.message),
        "415": _error("The body is not declared as JSON", errors.UnsupportedMediaType.message),
        "429": _rate_limited(),
        "503": _error(
            "The instance is disconnected, or the database cannot be reached",
            errors.InstanceNotConnected.message,
            errors.ServiceUnavailable.message,
        ),
    }


def _favorite_operation() -> dict[str, Any]:
    return {
        "summary": "Favorite or unfavorite a chat or a message",
        "description": "The upstream contract: checked in the order instance name, token, "
        "instance, body, target, connection, message. The body size (413) and media type "
        "(415) are checked first of all. Idempotent.",
        "operationId": "setFavorite",
        "parameters": [
            {
                "name": "instance",
                "in": "path",
                "required": True,
                "description": "Instance name",
                "schema": {"type": "string", "minLength": 1},
            }
        ],
        "security": [{"token": []}, {"authorization": []}],
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/FavoriteRequest"}}},
        },
        "responses": _favorite_responses(),
    }


def _probe(summary: str, *, can_fail: bool) -> dict[str, Any]:
    ok = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}
    responses = {"200": _json_response("Ready", ok)}
    if can_fail:
        down = {**ok, "properties": {"status": {"const": "unavailable"}}}
        responses["503"] = _json_response("The database does not answer", down)
    return {"get": {"summary": summary, "security": [], "responses": responses}}


def _schemas() -> dict[str, Any]:
    def optional_string(description: str) -> dict[str, Any]:
        return {"type": ["string", "null"], "description": description}

    return {
        "FavoriteRequest": {
            "type": "object",
            "required": ["favorite"],
            "properties": {
                "number": optional_string(
                    "Phone number or JID: favorites the whole chat. At most "
                    f"{MAX_NUMBER_LENGTH} characters once trimmed."
                ),
                "messageId": optional_string(
                    "Favorites one message; takes precedence over number. At most "
                    f"{MAX_MESSAGE_ID_LENGTH} characters."
                ),
                "favorite": {"type": "boolean", "description": "true favorites, false removes"},
            },
        },
        "FavoriteResult": {
            "type": "object",
            "required": ["success", "message", "chat_jid", "message_id", "favorite", "type"],
            "additionalProperties": False,
            "properties": {
                "success": {"const": True},
                "message": {"enum": SUCCESS_MESSAGES},
                "chat_jid": {"type": "string", "pattern": "^[^@]+@[a-z.]+$"},
                "message_id": {"type": ["string", "null"]},
                "favorite": {"type": "boolean"},
                "type": {"enum": ["chat", "message"]},
            },
        },
        "Error": {
            "type": "object",
            "required": ["success", "error"],
            "additionalProperties": False,
            "properties": {
                "success": {"const": False},
                "error": {
                    "type": "object",
                    "required": ["message"],
                    "additionalProperties": False,
                    "properties": {"message": {"type": "string"}},
                },
            },
        },
    }


def _security_schemes() -> dict[str, Any]:
    return {
        "token": {"type": "apiKey", "in": "header", "name": "token"},
        "authorization": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "The token, bare or as `Bearer <token>`; `token` wins if both.",
        },
    }


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "favgate REST API",
            "version": __version__,
            "description": "The REST-compatible route of favgate, and its health probes. "
            "Tokens are accepted in headers only, never in the query string.",
        },
        "paths": {
            "/api/chat/favorite/{instance}": {"post": _favorite_operation()},
            "/healthz": _probe("The process is up", can_fail=False),
            "/readyz": _probe("The database answers a ping", can_fail=True),
        },
        "components": {"schemas": _schemas(), "securitySchemes": _security_schemes()},
    }


DOCUMENT = build_document()


async def openapi_json(request: Request) -> Response:
    return JSONResponse(DOCUMENT)


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
