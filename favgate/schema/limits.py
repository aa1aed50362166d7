"""GraphQL abuse limits, built from the settings.

- **Tokens**: Strawberry's ``MaxTokensLimiter`` stops the parser past ``max_query_tokens``
  (graphql-core also refuses documents nested more than 200 levels).
- **Depth and aliases**: Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter``. Both
  follow fragment spreads and inline fragments (a fragment spread ten times counts its
  aliases ten times), so fragments cannot hide depth or aliases. But their walk is
  exponential in a chain of fragments that each spread the next twice, and the depth walk
  raises on an empty selection set or an unknown fragment; so they run only after
  ``favgate.schema.shape`` has measured the document in linear time: one that expands to
  more selections than ``max_query_tokens`` could write out, nests deeper than the parser
  allows one definition to, or has an empty selection set is refused instead.
- **Introspection** is refused unless ``settings.introspection``.
- **Suggestions** ("Did you mean ...?") are hidden in production. graphql-core 3.3 omits
  them per call (``hide_suggestions``, in validation and in the coercion of variables
  during execution); Strawberry passes neither, so this module validates documents itself
  (cached, like Strawberry's ``ValidationCache``, which it replaces) and gives the schema an
  execution context that asks for it. Nothing global changes: two schemas in one process
  can differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache, partial
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    ValidationContext,
    ValidationRule,
    validate,
)
from graphql.language.parser import MAX_NESTING_DEPTH
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from favgate.config import Settings
from favgate.schema.execution import PlainFieldsExecutionContext
from favgate.schema.shape import Shape, measure

__all__ = [
    "STRAWBERRY_RULES",
    "execution_context_class",
    "extensions",
    "hides_suggestions",
    "validation_rules",
]

# The rules Strawberry adds to graphql-core's in its own validation step.
STRAWBERRY_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)
EMPTY_SELECTION_SET = "Selection sets must not be empty."


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """The schema extensions that enforce the limits and validate documents.

    Factories, so that Strawberry builds fresh extensions per operation; the rules they
    carry are built once here, so that the validation cache recognizes them.
    """
    rules = validation_rules(settings)
    return [
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
        partial(AddValidationRules, list(rules)),
        partial(CachedValidation, hide_suggestions=hides_suggestions(settings)),
    ]


def validation_rules(settings: Settings) -> tuple[type[ASTValidationRule], ...]:
    limits = limits_rule(
        settings.max_query_depth, settings.max_query_aliases, settings.max_query_tokens
    )
    return (limits,) if settings.introspection else (limits, NoSchemaIntrospectionCustomRule)


def execution_context_class(settings: Settings) -> type[PlainFieldsExecutionContext]:
    if hides_suggestions(settings):
        return SuggestionFreeExecutionContext
    return PlainFieldsExecutionContext


def hides_suggestions(settings: Settings) -> bool:
    # Suggestions help a developer and map the schema for an attacker.
    return settings.environment == "production"


def limits_rule(max_depth: int, max_aliases: int, max_selections: int) -> type[ValidationRule]:
    """One rule: measure the document, then run Strawberry's limiters if it is safe to."""
    checks = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]

    class Limits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            shape = measure(context.document, max_selections)
            refusal = _refusal(shape, max_selections)
            if refusal is not None:
                context.report_error(GraphQLError(refusal))
            elif not shape.has_broken_spreads:  # else the standard rules report them
                for check in checks:
                    check(context)  # Strawberry's limiters do all their work when built

    return Limits


def _refusal(shape: Shape, max_selections: int) -> str | None:
    if shape.has_empty_selection_set:
        return EMPTY_SELECTION_SET
    if shape.selections > max_selections:
        return f"The document expands to more than {max_selections} selections."
    if shape.nesting > MAX_NESTING_DEPTH:
        return f"The document nests more than {MAX_NESTING_DEPTH} levels deep."
    return None


class CachedValidation(SchemaExtension):
    """Strawberry's validation step, cached, with suggestions shown or hidden."""

    def __init__(self, *, hide_suggestions: bool) -> None:
        super().__init__()
        self.hide_suggestions = hide_suggestions

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None  # parsing comes first
        errors = _validate(
            context.schema._schema,
            context.graphql_document,
            context.validation_rules,
            self.hide_suggestions,
        )
        # Setting them tells Strawberry that validation has run.
        context.pre_execution_errors = list(errors)
        yield


@lru_cache(maxsize=128)  # bounded: unique documents must not grow memory
def _validate(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    hide_suggestions: bool,
) -> tuple[GraphQLError, ...]:
    rules = (*rules, *STRAWBERRY_RULES)
    return tuple(validate(schema, document, rules, hide_suggestions=hide_suggestions))


class SuggestionFreeExecutionContext(PlainFieldsExecutionContext):
    """Coerces variables without "Did you mean ...?" in its errors."""

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        kwargs["hide_suggestions"] = True  # graphql-core passes it by keyword
        return super().build(*args, **kwargs)
