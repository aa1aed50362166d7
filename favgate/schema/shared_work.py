"""What the executions of one operation share: what the document alone decides.

graphql-core
collects the root fields and each object's sub-fields, and coerces each field's literal
arguments, on every request (its memo of sub-fields lives as long as one executor): some
180 Python calls of the 2,900 of a ``setFavorite`` request. An executor built
from a plan (``favgate.schema.plan``) takes the plan's ``OperationWork``: the collections,
kept by the values of the variables that selections' directives read (``@skip``,
``@include``, ``@defer``: all that collection reads of the variables), and each field's
arguments, a literal one coerced once (unless a resolver could change its value in place),
one holding a variable coerced per request. A field group stays the same list from one
request to the next, so graphql-core's memo and the plans above, shared, key on it as
before. A document whose fragments define variables of their own shares nothing.
``tests/test_shared_work.py`` checks the answers equal graphql-core's, request after
request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import Enum
from typing import Any, NamedTuple

from graphql import (
    ArgumentNode,
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLArgument,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
)
from graphql.execution.collect_fields import CollectedFields
from graphql.execution.values import VariableValues, coerce_argument

__all__ = ["PER_REQUEST", "ArgumentSteps", "Collections", "OperationWork", "argument_steps"]

# Values of the variables of an operation's directives whose collections are kept.
COLLECTIONS = 8


class Collections:
    """The field collections of one operation for one set of its directives' values:
    the root fields, and the sub-fields graphql-core memoizes by field group (kept across
    requests, the groups are the same lists each time), with the plans of their sets."""

    __slots__ = ("plans", "root", "sub_fields")

    def __init__(self) -> None:
        self.root: CollectedFields | None = None
        self.sub_fields: dict[tuple[GraphQLObjectType, int], tuple[Any, CollectedFields]] = {}
        self.plans: dict[tuple[GraphQLObjectType, int], tuple[Any, Any]] = {}


class OperationWork:
    """What the executions of one operation share, for one executor class: held by the
    operation's plan (``favgate.schema.plan``), so that it goes with its document.

    Field collection reads the variables only through the directives of selections
    (``@skip``, ``@include``, ``@defer``): collections are kept by those variables'
    values. A document whose fragments define variables of their own shares nothing.
    """

    __slots__ = ("_collections", "arguments", "directive_variables")

    def __init__(
        self, operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]
    ) -> None:
        self.directive_variables = _directive_variables(operation, fragments)
        self._collections: dict[tuple[Any, ...], Collections] = {}
        # A field's arguments, by (field definition, field node) ids: ``ArgumentSteps``.
        self.arguments: dict[tuple[int, int], ArgumentSteps] = {}

    def collections(self, variables: VariableValues) -> Collections | None:
        """The collections for these variables' values; None when they are not shared."""
        if self.directive_variables is None:
            return None
        key: tuple[Any, ...] = ()
        if self.directive_variables:
            coerced = variables.coerced
            key = tuple(coerced.get(name, Undefined) for name in self.directive_variables)
            if not all(type(value) in _KEYS for value in key):  # only what directives take
                return None
        found = self._collections.get(key)
        if found is None:
            if len(self._collections) >= COLLECTIONS:
                self._collections.clear()
            found = self._collections[key] = Collections()
        return found


# The values a directive's variable may hold (a Boolean, a String), or none.
_KEYS = frozenset({bool, str, type(None), type(Undefined)})


def _directive_variables(
    operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]
) -> tuple[str, ...] | None:
    """The variables the directives of the operation's selections read, sorted; None if a
    fragment defines variables (its fields' arguments then vary by spread)."""
    sets: list[SelectionSetNode] = [operation.selection_set]
    for fragment in fragments:
        if fragment.variable_definitions:
            return None
        sets.append(fragment.selection_set)
    names: set[str] = set()
    while sets:
        for selection in sets.pop().selections:
            names.update(_variables(selection.directives or ()))
            selection_set = getattr(selection, "selection_set", None)  # a spread has none
            if selection_set is not None:
                sets.append(selection_set)
    return tuple(sorted(names))


def _variables(directives: Iterable[DirectiveNode]) -> Iterator[str]:
    for directive in directives:
        for argument in directive.arguments or ():
            if isinstance(argument.value, VariableNode):
                yield argument.value.name.value


# An argument whose value a request decides (a variable in it): coerced per request.
PER_REQUEST = object()
# The coerced literals kept across requests: values no resolver can change in place.
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


# (output name, coerced value or PER_REQUEST or Undefined, name, definition, node)
ArgumentStep = tuple[str, Any, str, GraphQLArgument, ArgumentNode | None]


class ArgumentSteps(NamedTuple):
    """How a field node's arguments are coerced: each one's literal value, coerced once
    (``Undefined``: left out), or ``PER_REQUEST`` with what ``coerce_argument`` takes."""

    field: GraphQLField  # the objects of the key's ids, kept alive with it
    node: FieldNode
    steps: tuple[ArgumentStep, ...] | None  # None: graphql-core's way, per request


def argument_steps(field: GraphQLField, node: FieldNode) -> ArgumentSteps:
    """``field``'s arguments at ``node``: each literal one coerced now, as graphql-core's
    ``get_argument_values`` does, unless its value could be changed in place (a list, an
    input object: coerced per request); no steps if one fails (raised per request)."""
    given = {argument.name.value: argument for argument in node.arguments or ()}
    steps: list[ArgumentStep] = []
    for name, definition in field.args.items():
        argument = given.get(name)
        out_name = definition.out_name or name
        if argument is not None and _has_variable(argument.value):
            steps.append((out_name, PER_REQUEST, name, definition, argument))
            continue
        coerced: dict[str, Any] = {}
        try:
            coerce_argument(coerced, node, name, definition, argument, None, None)
        except GraphQLError:
            return ArgumentSteps(field, node, None)
        value = coerced.get(out_name, Undefined)
        if value is not Undefined and not _immutable(value):
            value = PER_REQUEST
        steps.append((out_name, value, name, definition, argument))
    return ArgumentSteps(field, node, tuple(steps))


def _has_variable(value: ValueNode) -> bool:
    nodes: list[ValueNode] = [value]
    while nodes:
        node = nodes.pop()
        if isinstance(node, VariableNode):
            return True
        if isinstance(node, ListValueNode):
            nodes.extend(node.values)
        elif isinstance(node, ObjectValueNode):
            nodes.extend(field.value for field in node.fields)
    return False


def _immutable(value: object) -> bool:
    return type(value) in _IMMUTABLE or isinstance(value, Enum)
