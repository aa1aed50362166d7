"""The REST-compatible route: ``POST /api/chat/favorite/{instance}``.

Clients written against the upstream WhatsApp API must not notice the difference, so this
module reproduces its request, its six-key success body and its error shape
``{"success": false, "error": {"message": ...}}`` to the byte. It only translates: the
rules live in ``favgate.resolvers`` and ``favgate.auth``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from favgate import apis
from favgate.auth import Access
from favgate.errors import InvalidRequestBody
from favgate.identity import identity_of
from favgate.resolvers import FavoriteResult, Target, set_favorite
from favgate.responses import JSONResponse
from favgate.storage import Storage


@dataclass(frozen=True, slots=True)
class FavoriteRequest:
    favorite: bool
    number: str | None = None
    message_id: str | None = None


async def favorite(request: Request) -> Response:
    try:
        result = await _favorite(request)
    except Exception as exc:
        return apis.public_refusal(apis.Api.REST, exc, request.scope)
    return JSONResponse(success_body(result))


async def _favorite(request: Request) -> FavoriteResult:
    storage: Storage = request.state.storage
    identity = identity_of(request)
    if identity.authenticated:  # an unknown token is answered 401, in the contract's order
        await identity.budget.charge(1)
    access = Access(storage, None, identity.caller)
    instance = await access.instance(request.path_params.get("instance"))
    body = parse_body(await request.body())
    target = Target.from_request(body.number, body.message_id)
    return await set_favorite(storage, instance, target, body.favorite)


def parse_body(raw: bytes) -> FavoriteRequest:
    """The request body, strictly typed: only strings and a boolean reach the resolvers."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequestBody("not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestBody(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # an integer past Python's 4300-digit conversion limit
        raise InvalidRequestBody("number too large") from None
    except RecursionError:
        raise InvalidRequestBody("nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidRequestBody("expected a JSON object")
    if "favorite" not in data:
        raise InvalidRequestBody("favorite is required")
    if not isinstance(data["favorite"], bool):
        raise InvalidRequestBody("favorite must be a boolean")
    return FavoriteRequest(
        favorite=data["favorite"],
        number=_optional_string(data, "number"),
        message_id=_optional_string(data, "messageId"),
    )


def _optional_string(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise InvalidRequestBody(f"{field} must be a string")
    return value


def success_body(result: FavoriteResult) -> dict[str, Any]:
    return {
        "success": True,
        "message": result.message,
        "chat_jid": result.chat_jid,
        "message_id": result.message_id,
        "favorite": result.favorite,
        "type": result.type.value,
    }


routes = [
    Route("/api/chat/favorite/{instance}", favorite, methods=["POST"]),
    # Without a name the upstream answers "Instance name is required", not a 404.
    Route("/api/chat/favorite/", favorite, methods=["POST"]),
    Route("/api/chat/favorite", favorite, methods=["POST"]),
]
