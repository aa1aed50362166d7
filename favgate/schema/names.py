"""GraphQL names of the schema's Python names, each converted once.

Strawberry converts names with its config's ``NameConverter``, and not only while it
builds the schema: each call of a resolver converts every argument's Python name to
find its value (``convert_arguments``), and each input object's fields likewise, item by
item of a batch. The names are the schema's own, a few dozen, so each is converted once
and kept. Strawberry documents the converter as the config's hook for naming.
"""

from __future__ import annotations

from strawberry.schema.name_converter import NameConverter

__all__ = ["CachedNameConverter"]


class CachedNameConverter(NameConverter):
    """Strawberry's converter, its conversions of Python names kept."""

    def __init__(self, auto_camel_case: bool = True) -> None:
        super().__init__(auto_camel_case)
        self._names: dict[tuple[bool, str], str] = {}

    def apply_naming_config(self, name: str) -> str:
        key = (self.auto_camel_case, name)  # the config may set the mode after building us
        converted = self._names.get(key)
        if converted is None:
            converted = self._names[key] = super().apply_naming_config(name)
        return converted
