"""The OpenAPI document (``GET /openapi.json``) against the live app.

schemathesis loads the document from the app itself, generates requests from it (valid
ones and, in negative mode, ones the document says are wrong) as several callers against
several instances, sends them through ASGI, and checks every response: never a 5xx other
than a documented 503, and status code, content type, headers and body all as documented.
"""

from __future__ import annotations

from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from helpers import MESSAGE_ID, Tenants
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi

from favgate.app import create_app
from favgate.config import Settings
from favgate.openapi import DOCUMENT

EXAMPLES = 300
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            # 503 is documented (a disconnected instance, a database outage); any other
            # 5xx is a bug.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
            # Valid input need not succeed: a random number is 400, a random instance 404.
            "positive_data_acceptance": {"enabled": False},
        }
    }
)


async def test_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == DOCUMENT
    assert DOCUMENT["openapi"] == "3.1.0"
    operation = DOCUMENT["paths"]["/api/chat/favorite/{instance}"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "404", "413", "415", "429", "503"}
    request = DOCUMENT["components"]["schemas"]["FavoriteRequest"]
    assert request["required"] == ["favorite"]
    assert set(DOCUMENT["components"]["securitySchemes"]) == {"token", "authorization"}


# Bodies that get past validation, for the statuses behind it (200, 503, message 404).
KNOWN_BODIES = [
    {"number": "+55 11 99999-9999", "favorite": True},
    {"messageId": MESSAGE_ID, "favorite": False},
    {"messageId": "NOPE", "number": "5511999999999", "favorite": True},
]


def cases(schema: Any) -> st.SearchStrategy[Any]:
    """Requests against every kind of instance: generated bodies, valid and invalid, and
    bodies that reach the database."""
    operation = schema["/api/chat/favorite/{instance}"]["POST"]
    instances = [{"instance": "main"}, {"instance": "offline"}, None]  # None: generated
    generated = [
        operation.as_strategy(mode, path_parameters=path)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for path in instances
    ]
    known = [
        operation.as_strategy(path_parameters=path, body=body)
        for body in KNOWN_BODIES
        for path in instances[:2]
    ]
    probes = [schema[path]["GET"].as_strategy() for path in ("/healthz", "/readyz")]
    return st.one_of(*generated, *known, *probes)


def credentials(tenants: Tenants) -> st.SearchStrategy[dict[str, str]]:
    """Who calls, and how: the account, the instance, another account, a stranger."""
    tokens = [tenants.acme_token, tenants.main_token, tenants.rival_token, "not-a-token"]
    return st.sampled_from(tokens).flatmap(
        lambda token: st.sampled_from([{"token": token}, {"Authorization": f"Bearer {token}"}])
    )


@pytest.mark.slow
async def test_app_conforms_to_its_document(settings: Settings, tenants: Tenants) -> None:
    app = create_app(settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    seen: set[int] = set()

    @hypothesis.given(case=cases(schema), headers=credentials(tenants))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        # Requests through a whole app are slow next to hypothesis's usual examples, and
        # schemathesis's negative strategies filter much of what they draw.
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.filter_too_much,
            hypothesis.HealthCheck.data_too_large,
        ],
    )
    def conforms(case: Any, headers: dict[str, str]) -> None:
        # The credentials are the test's, not generated ones (a generated `token` header
        # would win over an Authorization one). schemathesis then also probes each
        # successful request again without them, and with invalid ones, expecting 401.
        for name in ("token", "Authorization"):
            case.headers.pop(name, None)
        response = case.call_and_validate(headers=headers)
        seen.add(response.status_code)

    try:
        # schemathesis runs the app, lifespan included, on an event loop of its own.
        conforms()
    finally:
        asgi.shutdown_lifespans()
    # The run reached past authentication and into the resolvers.
    assert {200, 400, 401, 404, 503} <= seen
