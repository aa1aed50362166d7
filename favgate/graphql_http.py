"""GraphQL over HTTP at ``/graphql``: how one request runs, start to finish.

favgate owns this transport; Strawberry defines the schema and serves the WebSocket
(``favgate.websocket``). A request goes through these steps, in order, and the first that
refuses answers (``favgate.apis`` renders every refusal as GraphQL JSON with a code):

1. **Method**: GET or POST, else 405. A browser's GET without parameters is GraphiQL's
   page, where it is enabled.
2. **Identity** (``favgate.identity``, decided before this module runs): without a known
   token, 401 before anything is parsed; unless introspection is enabled, where a document
   that only introspects may run, charged to its client address.
3. **Parameters**: the body a JSON object (POST) or the URL's parameters (GET); ``query``
   and ``operationName`` strings, ``variables`` and ``extensions`` objects, variables
   nested at most ``MAX_VARIABLES_DEPTH`` deep. Else 400.
4. **Document**: the text itself or a persisted one by hash (``favgate.persisted``).
5. **Parse and validate**, under the abuse limits (``favgate.schema.limits``), cached by
   text. The operation is picked by name and planned once per document
   (``favgate.schema.plan``: what the document alone decides, kept with it); a mutation
   over GET is 405 (``Allow: POST``), a subscription is the WebSocket's.
6. **Variables** coerced (graphql-core's executor is built, from the plan).
7. **Cost** (``favgate.schema.cost``) charged whole, in one limiter decision: a request
   that cannot pay gets 429 and runs nothing. A request refused at steps 4 to 6 is charged
   1, so that invalid documents are not free to send.
8. **Execute**; errors are made public (``favgate.schema.errors``), the operation counted
   (``favgate.metrics``; operation names only from authenticated requests).

Every answer is ``Cache-Control: private``: it is one tenant's, chosen by a header.

Status codes follow the GraphQL over HTTP spec: with ``application/graphql-response+json``
a request that never executed answers 4xx without ``data``; with ``application/json``
parse, validation and variable errors answer 200, as that media type expects. An outage
that left no data answers 503.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    parse,
    print_ast,
    specified_rules,
    validate,
)
from graphql.execution import ExecutionResult
from graphql.execution.collect_fields import FragmentDetails
from graphql.language.parser import MAX_NESTING_DEPTH
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from favgate import apis, graphiql
from favgate.config import Settings
from favgate.errors import (
    FavgateError,
    InvalidGraphQLRequest,
    InvalidToken,
    MethodNotAllowed,
    OperationNotFound,
    PersistedQueryNotFound,
    SubscriptionOverHttp,
    TooCostly,
)
from favgate.identity import Identity, identity_of
from favgate.metrics import count_operation, count_refused
from favgate.persisted import PersistedDocuments, Resolved
from favgate.schema import Schema, build_context, limits
from favgate.schema.errors import public_errors
from favgate.schema.plan import Plan, details_of
from favgate.storage import Storage

logger = logging.getLogger(__name__)

MAX_VARIABLES_DEPTH = 32
# Documents parsed and validated, by text: as many as clients commonly send, bounded so
# that unique documents cannot grow memory.
DOCUMENT_CACHE_SIZE = 256
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTROSPECTION_FIELDS = frozenset({"__schema", "__type", "__typename"})
PER_CALLER = {"Cache-Control": "private", "Vary": "Accept, Token, Authorization"}


class RequestErrors(Exception):
    """GraphQL errors of the request itself (the document, its variables, an unknown
    persisted hash): no ``data``. ``status`` (400, or 404 for a hash) with
    ``application/graphql-response+json``, 200 with ``application/json``."""

    def __init__(self, errors: list[GraphQLError], code: str, status: int = 400) -> None:
        super().__init__(code)
        self.errors = [_with_code(error, code) for error in errors]
        self.status = status

    @classmethod
    def from_error(cls, error: FavgateError) -> RequestErrors:
        return cls([GraphQLError(error.message)], error.code, error.status_code)


@dataclass(frozen=True, slots=True)
class Params:
    query: str | None
    operation_name: str | None
    variables: dict[str, Any]
    extensions: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Checked:
    """A document text, parsed and validated once: the document, or why it is refused;
    and the plans of its operations, made as requests pick them."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...] = ()
    code: str = VALIDATION_FAILED
    fragments: dict[str, FragmentDefinitionNode] = field(default_factory=dict)
    fragment_details: dict[str, FragmentDetails] = field(default_factory=dict)
    # Its operations planned, by the name requests pick them by (None: the only one).
    plans: dict[str | None, Plan] = field(default_factory=dict)


class GraphQLTransport:
    """The ASGI app of ``/graphql`` over HTTP (every method: it answers 405 itself)."""

    def __init__(self, schema: Schema, settings: Settings, documents: PersistedDocuments) -> None:
        self.schema = schema
        self.settings = settings
        self.documents = documents
        self.rules = (
            *specified_rules,
            *limits.validation_rules(settings),
            *limits.STRAWBERRY_RULES,
        )
        self.hide_suggestions = limits.hides_suggestions(settings)
        self.executor_class = schema.execution_context_class
        self._checked: OrderedDict[str, Checked] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.respond(request)
        except RequestErrors as exc:
            count_refused(str(exc))
            response = self._request_errors(exc, scope)
        except Exception as exc:
            response = apis.public_refusal(apis.Api.GRAPHQL, exc, scope)
            if isinstance(exc, FavgateError):
                count_refused(exc.code)
        # An answer is one tenant's, chosen by a header: for the caller's own cache only.
        response.headers.update(PER_CALLER)
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            raise MethodNotAllowed("GraphQL is served over GET and POST", "GET, POST")
        if self._wants_graphiql(request):
            return graphiql.page_response()
        identity = identity_of(request)
        if not identity.authenticated and not self.settings.introspection:
            raise InvalidToken()
        storage: Storage = request.state.storage
        identity.budget.refuse_if_spent()
        try:
            executor, resolved = await self._prepare(request, identity, storage)
        except (RequestErrors, FavgateError) as exc:
            if _charged_when_refused(exc):
                await identity.budget.charge(1)
            raise
        await identity.budget.charge(executor.cost)
        if identity.authenticated and resolved.register is not None:
            printed = print_ast(executor.plan.document)
            await self.documents.register(storage.documents, resolved, printed)
        result = executor.run()
        if not isinstance(result, ExecutionResult):
            result = await result
        assert isinstance(result, ExecutionResult)
        return self._finish(request, identity, executor, result)

    async def _prepare(
        self, request: Request, identity: Identity, storage: Storage
    ) -> tuple[Prepared, Resolved]:
        params = await read_params(request)
        try:
            tenant = identity.caller.account if identity.caller else ""
            resolved = await self.documents.resolve(
                storage.documents, tenant, params.query, params.extensions
            )
        except PersistedQueryNotFound as exc:  # Apollo's link reads it from a 200 JSON body
            raise RequestErrors.from_error(exc) from None
        if resolved is None:
            raise InvalidGraphQLRequest("query is required")
        checked = self.check(resolved.text)
        if checked.document is None or checked.errors:
            raise RequestErrors(list(checked.errors), checked.code)
        try:
            plan = self.plan(checked, params.operation_name)
        except OperationNotFound as exc:
            raise RequestErrors.from_error(exc) from None
        _check_method(plan.kind, request.method)
        if not identity.authenticated and not only_introspects(plan):
            raise InvalidToken()
        prepared = Prepared.build(self, plan, params, identity, storage)
        if prepared.cost > identity.budget.limit:
            raise TooCostly(prepared.cost, identity.budget.limit, identity.budget.window)
        return prepared, resolved

    def check(self, text: str) -> Checked:
        """``text`` parsed and validated, from the cache when it was seen before."""
        checked = self._checked.get(text)
        if checked is None:
            checked = self._checked[text] = self._parse_and_validate(text)
            if len(self._checked) > DOCUMENT_CACHE_SIZE:
                self._checked.popitem(last=False)
        else:
            self._checked.move_to_end(text)
        return checked

    def plan(self, checked: Checked, name: str | None) -> Plan:
        """The operation ``name`` of a valid document, planned on its first request.
        Only operations found are kept: as many as the document holds."""
        plan = checked.plans.get(name)
        if plan is None:
            assert checked.document is not None
            operation = pick_operation(checked.document, name)
            plan = Plan.of(
                self.schema._schema,
                checked.document,
                operation,
                checked.fragments,
                checked.fragment_details,
            )
            checked.plans[name] = plan
        return plan

    def _parse_and_validate(self, text: str) -> Checked:
        try:
            document = parse(text, max_tokens=self.settings.max_query_tokens)
        except GraphQLError as error:
            return Checked(None, (error,), PARSE_FAILED)
        except RecursionError:
            too_deep = GraphQLError(f"The document nests more than {MAX_NESTING_DEPTH} levels.")
            return Checked(None, (too_deep,), PARSE_FAILED)
        errors = validate(
            self.schema._schema, document, self.rules, hide_suggestions=self.hide_suggestions
        )
        fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        return Checked(document, tuple(errors), VALIDATION_FAILED, fragments, details_of(fragments))

    def _wants_graphiql(self, request: Request) -> bool:
        return (
            self.settings.graphiql
            and request.method == "GET"
            and not request.query_params
            and "text/html" in request.headers.get("accept", "")
        )

    def _finish(
        self, request: Request, identity: Identity, executor: Prepared, result: ExecutionResult
    ) -> Response:
        if result.errors:
            result = ExecutionResult(result.data, public_errors(result.errors))
        errors = result.errors
        # Names label a metric: only those of known callers, so that strangers cannot
        # fill its series (favgate.metrics caps them too).
        name = executor.plan.name if identity.authenticated else None
        count_operation(executor.plan.kind.value, name, result)
        body: dict[str, Any] = {"data": result.data}
        if errors:
            body["errors"] = [error.formatted for error in errors]
        status = 503 if result.data is None and _unavailable(errors) else 200
        return apis.graphql_response(body, status, apis.media_type(request.scope))

    def _request_errors(self, exc: RequestErrors, scope: Scope) -> Response:
        media = apis.media_type(scope)
        status = exc.status if media == apis.GRAPHQL_RESPONSE else 200
        return apis.graphql_errors([error.formatted for error in exc.errors], status, scope)


@dataclass(slots=True)
class Prepared:
    """An operation ready to run: its variables coerced, its cost known."""

    plan: Plan
    executor: Any  # the schema's executor, built for this request
    cost: int

    @classmethod
    def build(
        cls,
        transport: GraphQLTransport,
        plan: Plan,
        params: Params,
        identity: Identity,
        storage: Storage,
    ) -> Prepared:
        context = build_context(storage, None, caller=identity.caller)
        context.webhook_allow_private = transport.settings.webhook_allow_private
        executor = plan.executor(
            transport.executor_class, context, params.variables, transport.hide_suggestions
        )
        if isinstance(executor, list):  # the variables do not fit their definitions
            raise RequestErrors(executor, BAD_USER_INPUT)
        return cls(plan, executor, plan.cost(executor.variable_values.coerced))

    def run(self) -> Awaitable[ExecutionResult] | ExecutionResult:
        """The result, or an awaitable of it: awaited by the caller, so that the
        resolvers' every resumption passes through one coroutine less."""
        result: Awaitable[ExecutionResult] | ExecutionResult = self.executor.execute_operation()
        return result


async def read_params(request: Request) -> Params:
    """The request's GraphQL parameters, each of its documented type."""
    if request.method == "GET":
        raw: Mapping[str, Any] = {
            "query": request.query_params.get("query"),
            "operationName": request.query_params.get("operationName"),
            "variables": _json_param(request.query_params.get("variables"), "variables"),
            "extensions": _json_param(request.query_params.get("extensions"), "extensions"),
        }
    else:
        raw = _json_body(await request.body())
    return Params(
        query=_optional(raw, "query", str, "a string"),
        operation_name=_optional(raw, "operationName", str, "a string") or None,
        variables=_variables(_optional(raw, "variables", dict, "an object") or {}),
        extensions=_optional(raw, "extensions", dict, "an object") or {},
    )


def _json_body(body: bytes) -> Mapping[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson also refuses what no answer could carry: lone surrogates, NaN, nesting
        # past 1,024 levels.
        raise InvalidGraphQLRequest("the body is not valid JSON") from None
    if isinstance(data, list):
        raise InvalidGraphQLRequest("batched requests are not supported")
    if not isinstance(data, dict):
        raise InvalidGraphQLRequest("the body must be a JSON object")
    return data


def _json_param(value: str | None, name: str) -> Any:
    if value is None or value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise InvalidGraphQLRequest(f"{name} is not valid JSON") from None


def _optional(raw: Mapping[str, Any], name: str, kind: type, described: str) -> Any:
    value = raw.get(name)
    if value is not None and not isinstance(value, kind):
        raise InvalidGraphQLRequest(f"{name} must be {described}")
    return value


def _variables(variables: dict[str, Any]) -> dict[str, Any]:
    if _depth(variables) > MAX_VARIABLES_DEPTH:
        raise InvalidGraphQLRequest(f"variables nest more than {MAX_VARIABLES_DEPTH} levels")
    return variables


def _depth(value: Any) -> int:
    """How deep ``value`` nests, measured without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth > MAX_VARIABLES_DEPTH:
                break
            stack.extend((child, depth + 1) for child in item)
    return deepest


def pick_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        if len(operations) != 1:
            raise OperationNotFound("The document holds several operations: name one")
        return operations[0]
    for operation in operations:
        if operation.name is not None and operation.name.value == name:
            return operation
    raise OperationNotFound("The document holds no operation of that name")


def _check_method(kind: OperationType, method: str) -> None:
    if kind is OperationType.SUBSCRIPTION:
        raise SubscriptionOverHttp()
    if kind is OperationType.MUTATION and method != "POST":
        raise MethodNotAllowed("Mutations are served over POST only", "POST")


def only_introspects(plan: Plan) -> bool:
    """Whether every root field is introspection's (and one of them is more than
    ``__typename``): what a client without a token may run, to load the schema."""
    names = plan.root_names
    return (
        plan.kind is OperationType.QUERY
        and names <= INTROSPECTION_FIELDS
        and bool(names - {"__typename"})
    )


def _charged_when_refused(exc: Exception) -> bool:
    """A request refused for what it holds costs 1 (an outage costs nothing)."""
    return isinstance(exc, RequestErrors) or (
        isinstance(exc, FavgateError) and 400 <= exc.status_code < 500
    )


def _with_code(error: GraphQLError, code: str) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={**(error.extensions or {}), "code": code},
    )


def _unavailable(errors: list[GraphQLError] | None) -> bool:
    return bool(errors) and all(
        (error.extensions or {}).get("code") == "SERVICE_UNAVAILABLE" for error in errors or ()
    )
