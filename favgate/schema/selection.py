"""What a query selects below the field being resolved, fragments included.

A resolver that knows what will be asked of its result can load it in one go: the page of
favorites loads its messages with the page when ``edges { node { message } }`` is
selected, and ``message`` then resolves without a coroutine per edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

# Answers by (path, field nodes): they depend on the document alone (names, fragments; not
# on variables, since @skip and @include are not looked at), and known documents come back
# as the same nodes. The nodes are kept with the answer, so that their ids stay theirs.
_answers: dict[tuple[object, ...], tuple[object, bool]] = {}
MAX_ANSWERS = 256


def selects(info: Any, *path: str) -> bool:
    """Whether the field ``info`` resolves selects ``path`` (GraphQL names) below it.

    Conservative: a field under ``@skip`` or ``@include`` counts as selected.
    """
    nodes = info._raw_info.field_nodes  # Strawberry's Info keeps graphql-core's here
    key = (path, *map(id, nodes))
    known = _answers.get(key)
    if known is not None:
        return known[1]
    answer = any(_reaches(field.selections, path) for field in _fields(info.selected_fields))
    if len(_answers) >= MAX_ANSWERS:
        _answers.clear()
    _answers[key] = (nodes, answer)
    return answer


def _reaches(selections: Iterable[Selection], path: tuple[str, ...]) -> bool:
    if not path:
        return True
    head, rest = path[0], path[1:]
    return any(
        field.name == head and _reaches(field.selections, rest) for field in _fields(selections)
    )


def _fields(selections: Iterable[Selection]) -> Iterable[SelectedField]:
    """The fields among ``selections``, those of fragments spread inline."""
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        elif isinstance(selection, FragmentSpread | InlineFragment):
            yield from _fields(selection.selections)
