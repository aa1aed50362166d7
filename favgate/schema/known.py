"""Known operations: documents already parsed and found valid, run without the per-request
machinery that has nothing left to do for them.

The first time the schema meets a query string, Strawberry's whole path runs it: the
extensions parse it (``ParserCache``, ``MaxTokensLimiter``), validate it under the limits
(``AddValidationRules``, ``CachedValidation``) and wrap the operation
(``OperationMetrics``, ``PublicErrors``). When the document proves valid, the validation
step records it here. A later request with the same string then skips the parse and
validation hooks, the extension runner and the six extension instances Strawberry builds
per request: ``Schema.execute`` hands the recorded document to graphql-core as Strawberry
would, then does by hand, in the same order, what the operation hooks do on the way out
(mask resolver errors, then count the operation).

Parsing and validation depend on the string, the schema and the limits, never on the
variables or the operation name, so a string found valid stays valid under its schema;
the cache belongs to the schema, which the settings build. What depends on the request is
decided per request: which operation the name picks and whether its type is allowed (no
mutation over GET). Whatever this module cannot decide goes to the whole path, which
answers as it always did.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from graphql import DocumentNode
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
)
from strawberry.types.graphql import OperationType
from strawberry.utils.operation import get_first_operation, get_operation_type

from favgate.metrics import OperationMetrics
from favgate.schema.errors import PublicErrors
from favgate.schema.limits import CachedValidation

__all__ = ["KnownOperations", "Operation", "pick_operation", "stands_in_for"]

# How many documents are kept: as many as the parse and validation caches keep.
DEFAULT_SIZE = 128


class KnownOperations:
    """Valid documents by query string, the ``size`` most recently used."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()

    def get(self, query: object) -> DocumentNode | None:
        if not isinstance(query, str):  # a client can send any JSON as "query"
            return None
        document = self._documents.get(query)
        if document is not None:
            self._documents.move_to_end(query)
        return document

    def add(self, query: str, document: DocumentNode) -> None:
        """Record ``document``, parsed from ``query`` and found valid."""
        self._documents[query] = document
        self._documents.move_to_end(query)
        if len(self._documents) > self.size:
            self._documents.popitem(last=False)

    def __len__(self) -> int:
        return len(self._documents)


@dataclass(frozen=True, slots=True)
class Operation:
    """The operation a request runs: the name Strawberry would pass on, and its type."""

    name: str | None
    type: OperationType


def pick_operation(
    document: DocumentNode, provided_name: str | None, allowed: Iterable[OperationType]
) -> Operation | None:
    """The operation as Strawberry's ``ExecutionContext`` picks it (the name given, else
    the first operation's), or None when Strawberry would refuse the request: no such
    operation, or a type not allowed here. The whole path then raises what it raises."""
    name = provided_name
    if name is None:
        first = get_first_operation(document)
        name = None if first is None or first.name is None else first.name.value
    try:
        type_ = get_operation_type(document, name)
    except RuntimeError:
        return None
    return Operation(name, type_) if type_ in allowed else None


def stands_in_for(extensions: Iterable[Any]) -> bool:
    """Whether this path does all that ``extensions`` would do for a known document.

    The parse and validation extensions have nothing left to do; the operation hooks of
    ``OperationMetrics`` and ``PublicErrors`` are done by hand. Any other extension
    (a field middleware, a hook on execution) needs the whole path.
    """
    known = {
        OperationMetrics,
        ParserCache,
        MaxTokensLimiter,
        AddValidationRules,
        CachedValidation,
        PublicErrors,
    }
    return all(_extension_class(extension) in known for extension in extensions)


def _extension_class(extension: Any) -> type[SchemaExtension] | Callable[..., Any]:
    if isinstance(extension, partial):
        return _extension_class(extension.func)
    return extension if isinstance(extension, type) else type(extension)
