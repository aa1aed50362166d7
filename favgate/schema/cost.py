"""What an operation costs, in rate-limit units, read off its validated document.

A request is charged its whole cost before anything executes (``favgate.graphql_http``),
so that what a client puts in one request (aliases, fragments, batch items) cannot buy
more work than the same work sent as separate requests:

- each root field of a query or a mutation costs 1, aliases included, whether it is
  written at the root or spread there by fragments;
- ``setFavorites`` costs the number of its items (1 at least), written in the document or
  passed as a variable;
- a subscription costs 1 to start.

``@skip`` and ``@include`` are not evaluated: a field costs what it would if it ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)

BATCH_FIELD = "setFavorites"
BATCH_ARGUMENT = "items"


def operation_cost(
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """The units ``operation`` costs, given its coerced ``variables``."""
    if operation.operation is OperationType.SUBSCRIPTION:
        return 1
    fields = root_fields(operation.selection_set, fragments)
    return max(1, sum(_field_cost(field, variables) for field in fields))


def fixed_cost(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> int | None:
    """What ``operation`` costs whatever its variables; None when a variable decides it
    (a batch's items passed as a variable): when reckoning the cost reads one."""
    variables = _NoneGiven()
    cost = operation_cost(operation, fragments, variables)
    return None if variables.read else cost


def root_fields(
    selection_set: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of a selection set, through its fragments. Validation has refused
    fragment cycles and unknown fragments; a fragment spread twice counts twice."""
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from root_fields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from root_fields(fragment.selection_set, fragments)


def _field_cost(field: FieldNode, variables: Mapping[str, Any]) -> int:
    if field.name.value != BATCH_FIELD:
        return 1
    for argument in field.arguments or ():
        if argument.name.value == BATCH_ARGUMENT:
            return max(1, _length(argument.value, variables))
    return 1


def _length(value: Any, variables: Mapping[str, Any]) -> int:
    if isinstance(value, ListValueNode):
        return len(value.values)
    if isinstance(value, VariableNode):
        given = variables.get(value.name.value)
        return len(given) if isinstance(given, list) else 1
    return 1  # one item, coerced to a list of one


class _NoneGiven(Mapping[str, Any]):
    """No variables, and whether the cost asked for one."""

    read = False

    def __getitem__(self, name: str) -> Any:
        self.read = True
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0
