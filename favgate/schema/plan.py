"""An operation's plan: what every request of one (document, operation) shares.

Each request used to redo, before running anything, work that depends on its document
alone: pick the operation, walk its root fields for the cost and for introspection,
gather its fragments, and resolve the type of each variable (graphql-core's
``type_from_ast``, inside ``Executor.build``). A plan does that once per operation of a
checked document and is kept with it (``favgate.graphql_http`` caches documents by text).
What is left per request is what the request decides: its variables' values, and the
cost where a variable holds a batch's items.

Variables take a short way when each one is given and fits its type: coerced with the
resolved signatures, and the executor built from its constructor. Anything else (a
variable left to its default, a value that does not fit, one nested too deeply) goes
through graphql-core's ``build``, which then answers with its own values or errors.
``tests/test_plan.py`` checks that both ways build the same executor, errors and cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    default_field_resolver,
    default_type_resolver,
)
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    input_is_nested_too_deeply,
)
from graphql.type import is_non_null_type
from graphql.utilities import coerce_input_value
from strawberry.execution.is_awaitable import optimized_is_awaitable

from favgate.schema.cost import fixed_cost, operation_cost, root_fields

__all__ = ["Plan", "details_of"]

# What a JSON variable can nest through: anything else is a leaf, never too deep.
_CONTAINERS = (list, tuple, dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """One operation of a checked document, read once."""

    schema: GraphQLSchema
    document: DocumentNode
    operation: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    root_names: frozenset[str]  # the root fields' names, through fragments
    fixed_cost: int | None  # None when a variable decides it
    # The variables' resolved types; None when only ``build`` may coerce them (a
    # fragment with variables of its own, a type that is no input type).
    signatures: tuple[GraphQLVariableSignature, ...] | None
    fragment_details: dict[str, FragmentDetails]

    @classmethod
    def of(
        cls,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        fragments: Mapping[str, FragmentDefinitionNode],
        fragment_details: dict[str, FragmentDetails],
    ) -> Plan:
        """``operation``'s plan. ``fragment_details`` are the document's (``details_of``),
        shared by the plans of all its operations: a copy each would keep a document of
        many operations and fragments many times over."""
        names = frozenset(f.name.value for f in root_fields(operation.selection_set, fragments))
        return cls(
            schema,
            document,
            operation,
            fragments,
            names,
            fixed_cost(operation, fragments),
            _signatures(schema, operation, fragments),
            fragment_details,
        )

    @property
    def name(self) -> str | None:
        return self.operation.name.value if self.operation.name else None

    @property
    def kind(self) -> OperationType:
        return self.operation.operation

    def cost(self, variables: Mapping[str, Any]) -> int:
        """What the operation costs, given its coerced ``variables``."""
        if self.fixed_cost is not None:
            return self.fixed_cost
        return operation_cost(self.operation, self.fragments, variables)

    def executor(
        self,
        executor_class: Any,
        context: Any,
        raw_variables: dict[str, Any],
        hide_suggestions: bool,
    ) -> Any:
        """The executor for these variables, or the errors of variables that do not fit:
        what ``executor_class.build`` returns, built without redoing the document's work
        where the variables allow."""
        values = self.coerce(raw_variables)
        if values is None:
            return executor_class.build(
                self.schema,
                self.document,
                context_value=context,
                raw_variable_values=raw_variables,
                operation_name=self.name,
                is_awaitable=optimized_is_awaitable,
                hide_suggestions=hide_suggestions,
            )
        return executor_class(
            self.schema,
            self.fragments,
            self.fragment_details,
            None,  # root value
            context,
            self.operation,
            values,
            default_field_resolver,
            default_type_resolver,
            default_field_resolver,  # subscribe field resolver
            False,  # early execution
            None,  # middleware
            optimized_is_awaitable,
            None,  # async iterable check
            hide_suggestions=hide_suggestions,
        )

    def coerce(self, raw: Mapping[str, Any]) -> VariableValues | None:
        """``raw`` coerced as graphql-core's ``coerce_variable_values`` would, when every
        variable is given and fits or is nullable and absent without a default; else
        None. graphql-core ignores variables that the operation does not define; so
        does this."""
        if self.signatures is None:
            return None
        try:
            return self._coerce(self.signatures, raw)
        except (GraphQLError, RecursionError):  # build reports them as it does
            return None

    @staticmethod
    def _coerce(
        signatures: tuple[GraphQLVariableSignature, ...], raw: Mapping[str, Any]
    ) -> VariableValues | None:
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        for signature in signatures:
            value = raw.get(signature.name, Undefined)
            if value is Undefined:
                if signature.default is not None or is_non_null_type(signature.type):
                    return None
                sources[signature.name] = VariableValueSource(signature)
                continue
            if isinstance(value, _CONTAINERS) and input_is_nested_too_deeply(value, signature.type):
                return None
            value_coerced = coerce_input_value(value, signature.type)
            if value_coerced is Undefined:
                return None
            sources[signature.name] = VariableValueSource(signature, value)
            coerced[signature.name] = value_coerced
        return VariableValues(sources, coerced)


def details_of(fragments: Mapping[str, FragmentDefinitionNode]) -> dict[str, FragmentDetails]:
    """A document's fragments as graphql-core's executor reads them: once per document."""
    return {name: FragmentDetails(fragment) for name, fragment in fragments.items()}


def _signatures(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> tuple[GraphQLVariableSignature, ...] | None:
    if any(fragment.variable_definitions for fragment in fragments.values()):
        return None
    signatures = []
    for definition in operation.variable_definitions or ():
        signature = get_variable_signature(schema, definition)
        if isinstance(signature, GraphQLError):
            return None
        signatures.append(signature)
    return tuple(signatures)
