"""Properties, checked by hypothesis: number normalization, the REST body parser, and the
GraphQL API under generated operations (hypothesis-graphql) over HTTP.

Runs are derandomized, so CI sees the same examples every time; raise ``max_examples``
locally to search further.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from graphql import ArgumentNode, DocumentNode, StringValueNode, Visitor, print_ast, visit
from helpers import Tenants
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, queries

from favgate import errors, graphql_http
from favgate.errors import InvalidArgument, InvalidRequestBody
from favgate.resolvers import normalize_number
from favgate.rest import FavoriteRequest, parse_body
from favgate.schema import build_schema

pytestmark = pytest.mark.slow

PURE = settings(max_examples=1500, deadline=None, database=None, derandomize=True)


@pytest.fixture
def driver() -> str:
    # PyMongo's async client, not motor: motor's driver threads stamp every wire message
    # with an id from the global ``random`` (heartbeats included, at any moment), and
    # Hypothesis fails a test whose global random state changes while it draws an example
    # (a deprecation warning, an error here). The async client's work runs on the event
    # loop, which is idle while Hypothesis draws.
    return "pymongo"


# --- Number normalization -----------------------------------------------------------------

# The documented shapes of a chat JID.
JID = re.compile(
    r"\d{7,15}@s\.whatsapp\.net|\d{5,20}(-\d{5,20})?@g\.us|\d{5,20}@lid"
    r"|(status|\d{5,20})@broadcast|\d{5,20}@newsletter",
    re.ASCII,
)
FORMATTING = " +-.()\t"
SERVERS = ["s.whatsapp.net", "c.us", "g.us", "lid", "broadcast", "newsletter", "S.WhatsApp.Net"]

phone_digits = st.text("0123456789", min_size=7, max_size=15)
near_misses = st.text("0123456789@+-. ()sgculidwhatsp\u0660\uff11", max_size=40)
jids = st.builds(
    "{}@{}".format,
    st.one_of(st.text("0123456789", min_size=1, max_size=22), st.just("status"), near_misses),
    st.sampled_from(SERVERS),
)
anything = st.one_of(st.text(max_size=80), near_misses, jids, phone_digits)


@st.composite
def formatted(draw: st.DrawFn, digits: str) -> str:
    """``digits`` with formatting characters around and between them."""
    pieces = [draw(st.text(FORMATTING, max_size=2)) + digit for digit in digits]
    return "".join(pieces) + draw(st.text(FORMATTING, max_size=2))


@PURE
@given(anything)
def test_a_number_is_normalized_or_refused(raw: str) -> None:
    try:
        jid = normalize_number(raw)
    except InvalidArgument as error:
        assert error.message.startswith("Invalid number: ")
        return
    assert JID.fullmatch(jid), jid
    assert normalize_number(jid) == jid  # idempotent


@PURE
@given(phone_digits.flatmap(lambda digits: st.tuples(st.just(digits), formatted(digits))))
def test_formatting_characters_do_not_matter(case: tuple[str, str]) -> None:
    digits, written = case
    assert normalize_number(written) == normalize_number(digits) == f"{digits}@s.whatsapp.net"


@PURE
@given(phone_digits, st.sampled_from(["c.us", "C.US", "s.whatsapp.net", "S.WHATSAPP.NET"]))
def test_user_jids_are_one_chat(digits: str, server: str) -> None:
    assert normalize_number(f"{digits}@{server}") == f"{digits}@s.whatsapp.net"


# --- The REST body parser -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
favorite_like = st.fixed_dictionaries(
    {},
    optional={
        "number": json_values,
        "messageId": json_values,
        "favorite": st.one_of(st.booleans(), json_values),
        "$where": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    favorite_like.map(lambda value: json.dumps(value).encode()),
    favorite_like.map(lambda value: json.dumps(value).encode("utf-16")),
)


@PURE
@given(bodies)
def test_the_parser_returns_strings_and_a_boolean_or_refuses(raw: bytes) -> None:
    try:
        request = parse_body(raw)
    except InvalidRequestBody as error:
        assert error.message.startswith("Invalid request body: ")
        return
    assert isinstance(request, FavoriteRequest)
    assert isinstance(request.favorite, bool)
    for value in (request.number, request.message_id):
        assert value is None or isinstance(value, str)
    data = json.loads(raw)
    assert (request.favorite, request.number, request.message_id) == (
        data["favorite"],
        data.get("number"),
        data.get("messageId"),
    )


# --- GraphQL, generated operations over HTTP ----------------------------------------------

SCHEMA = build_schema()._schema
PUBLIC_CODES = {
    cls.code
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.FavgateError)
} - {errors.InternalError.code}
# The codes of a request refused before it ran, for what its document or variables hold.
REQUEST_CODES = {
    graphql_http.PARSE_FAILED,
    graphql_http.VALIDATION_FAILED,
    graphql_http.BAD_USER_INPUT,
}


class OnMain(Visitor):
    """Points every ``instance`` argument at instance main, past authorization."""

    def enter_argument(self, node: ArgumentNode, *_: Any) -> ArgumentNode | None:
        if node.name.value != "instance":
            return None
        return ArgumentNode(name=node.name, value=StringValueNode(value="main"))


def on_main(document: DocumentNode) -> str:
    return print_ast(visit(document, OnMain()))


operations = st.one_of(
    queries(SCHEMA, print_ast=on_main),
    mutations(SCHEMA, print_ast=on_main),
    queries(SCHEMA),
    mutations(SCHEMA),
    queries(SCHEMA, mode=Mode.NEGATIVE),
    mutations(SCHEMA, mode=Mode.NEGATIVE),
)


# What Python exceptions say, as Strawberry's limiters leaked them (a KeyError's "'Nope'").
EXCEPTION_TEXT = re.compile(
    r"^'[^']*'$|Traceback|recursion depth|empty sequence|has no attribute|NoneType"
    r"|unexpected keyword|not subscriptable|not iterable"
)


def assert_public(error: dict[str, Any]) -> None:
    """An error a client may see: a favgate error, or one about the request's validity."""
    message, code = error["message"], error.get("extensions", {}).get("code")
    assert message != "Unexpected error.", error
    if "path" in error:  # raised while executing: only favgate's own errors
        assert code in PUBLIC_CODES, error
    else:  # refused before executing: validation and coercion, never an exception's text
        assert code in PUBLIC_CODES | REQUEST_CODES, error
        assert not EXCEPTION_TEXT.search(message), error


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    # One client and one set of tenants for every example: each example is a request
    # whose outcome must hold whatever state the earlier ones left.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operation=operations)
async def test_generated_operations_get_public_answers(
    client: httpx.AsyncClient, tenants: Tenants, operation: str
) -> None:
    headers = {"token": tenants.acme_token}
    response = await client.post("/graphql", json={"query": operation}, headers=headers)
    # A request refused whole is 400 (a mutation in a document of several, unnamed); else
    # 200, request errors included (application/json). Always GraphQL JSON.
    assert response.status_code in (200, 400), response.text
    for error in response.json().get("errors", []):
        assert_public(error)
