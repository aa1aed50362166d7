"""The shape of a GraphQL document with its fragment spreads expanded, measured in linear time.

Strawberry's depth and alias limiters walk a document with every fragment spread expanded
in place and remember nothing between spreads. A chain of fragments that each spread the
next one twice therefore costs them time exponential in the length of the chain (20
fragments take seconds, 30 take hours), and a dense web of cyclic spreads is worse. This
module measures what their walk would visit, with each fragment measured once, so that
``favgate.schema.limits`` lets them walk only documents whose expansion is small.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)


@dataclass(frozen=True, slots=True)
class Outline:
    """One definition on its own: its selections, how deep they nest, what they spread."""

    selections: int
    nesting: int
    # (fragment name, nesting level of the selection set holding the spread)
    spreads: tuple[tuple[str, int], ...]
    has_empty_selection_set: bool


@dataclass(frozen=True, slots=True)
class Shape:
    """A whole document, every spread expanded (selections capped at ``cap + 1``)."""

    selections: int
    nesting: int
    has_empty_selection_set: bool
    # Spreads of unknown fragments, or a cycle of spreads: the document is invalid, the
    # standard rules say why, and an expanded walk would not end (or not soon).
    has_broken_spreads: bool


def outline(selection_set: SelectionSetNode) -> Outline:
    """Walks one definition without recursion (nesting is bounded by the parser, but
    there is no reason to spend the stack)."""
    selections, nesting, empty = 0, 0, False
    spreads: list[tuple[str, int]] = []
    pending = [(selection_set, 1)]
    while pending:
        current, level = pending.pop()
        nesting = max(nesting, level)
        empty = empty or not current.selections
        for selection in current.selections:
            selections += 1
            if isinstance(selection, FragmentSpreadNode):
                spreads.append((selection.name.value, level))
            elif (
                isinstance(selection, FieldNode | InlineFragmentNode)
                and selection.selection_set is not None
            ):
                pending.append((selection.selection_set, level + 1))
    return Outline(selections, nesting, tuple(spreads), empty)


def measure(document: DocumentNode, cap: int) -> Shape:
    """The shape of ``document``; selection counts stop growing past ``cap``."""
    fragments = {
        definition.name.value: outline(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    operations = [
        outline(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
    ]
    expanded, cyclic = _expand_fragments(fragments, cap)
    totals = [_expand(operation, expanded, cap) for operation in operations]
    everything = [*fragments.values(), *operations]
    return Shape(
        selections=min(sum(selections for selections, _ in totals), cap + 1),
        nesting=max((nesting for _, nesting in totals), default=0),
        has_empty_selection_set=any(o.has_empty_selection_set for o in everything),
        has_broken_spreads=cyclic
        or any(name not in fragments for o in everything for name, _ in o.spreads),
    )


def _expand_fragments(
    fragments: dict[str, Outline], cap: int
) -> tuple[dict[str, tuple[int, int]], bool]:
    """Each fragment's (selections, nesting) with its spreads expanded, and whether the
    spreads form a cycle. A post-order walk with an explicit stack: a chain of fragments
    may be longer than the interpreter's stack is deep."""
    expanded: dict[str, tuple[int, int]] = {}
    cyclic = False
    for root in fragments:
        if root in expanded:
            continue
        path = [(root, iter(fragments[root].spreads))]
        on_path = {root}
        while path:
            name, spreads = path[-1]
            for spread, _ in spreads:
                cyclic = cyclic or spread in on_path
                if spread in fragments and spread not in expanded and spread not in on_path:
                    path.append((spread, iter(fragments[spread].spreads)))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                expanded[name] = _expand(fragments[name], expanded, cap)
    return expanded, cyclic


def _expand(definition: Outline, expanded: dict[str, tuple[int, int]], cap: int) -> tuple[int, int]:
    selections, nesting = definition.selections, definition.nesting
    for spread, level in definition.spreads:
        # Unknown fragments and spreads that close a cycle add nothing: both make the
        # document invalid (has_broken_spreads) and keep the limiters from walking it.
        inner_selections, inner_nesting = expanded.get(spread, (0, 0))
        selections = min(selections + inner_selections, cap + 1)
        nesting = max(nesting, level - 1 + inner_nesting)
    return selections, nesting
