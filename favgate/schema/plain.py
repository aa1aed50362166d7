"""A schema's plain fields: those Strawberry resolves by reading an attribute of the object
above, with no resolver, extension, exception handler or argument (a scalar or an enum,
an object or a list of objects), found once per schema. ``favgate.schema.execution``
completes them without graphql-core's per-field detour.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, cast
from weakref import WeakKeyDictionary

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    is_leaf_type,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.field import StrawberryField

__all__ = ["PlainField", "PlainLeaf", "PlainObject", "PlainSchema", "plain_schema"]


class PlainLeaf(NamedTuple):
    attribute: str  # the Python name Strawberry's default resolver reads
    leaf_type: GraphQLLeafType
    return_type: GraphQLOutputType  # the leaf type, or it wrapped in non-null
    non_null: bool


class PlainObject(NamedTuple):
    attribute: str
    object_type: GraphQLObjectType  # the object, or the list's items' object
    return_type: GraphQLOutputType  # the field's type, as declared
    non_null: bool
    is_list: bool
    item_type: GraphQLOutputType  # a list's items' type (maybe non-null); else the object's
    item_non_null: bool


PlainField = PlainLeaf | PlainObject
PlainFields = dict[tuple[str, str], PlainField]  # by (type name, field name)


class PlainSchema(NamedTuple):
    fields: PlainFields
    objects: frozenset[str]  # object types whose is_type_of, if any, is Strawberry's own


_plain_schemas: WeakKeyDictionary[GraphQLSchema, PlainSchema] = WeakKeyDictionary()


def plain_schema(schema: GraphQLSchema) -> PlainSchema:
    """The schema's plain fields and plainly checked object types, found once per schema."""
    found = _plain_schemas.get(schema)
    if found is None:
        types = [
            type_
            for type_ in schema.type_map.values()
            if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__")
        ]
        objects = frozenset(type_.name for type_ in types if _checks_plainly(type_))
        fields = dict(_find_plain_fields(types, objects))
        found = _plain_schemas[schema] = PlainSchema(fields, objects)
    return found


def _checks_plainly(type_: GraphQLObjectType) -> bool:
    # Strawberry's own is_type_of (a type that implements an interface) reads no info.
    definition = type_.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    return type_.is_type_of is None or (
        isinstance(definition, StrawberryObjectDefinition) and definition.is_type_of is None
    )


def _find_plain_fields(
    types: list[GraphQLObjectType], objects: frozenset[str]
) -> Iterator[tuple[tuple[str, str], PlainField]]:
    for type_ in types:
        for name, field in type_.fields.items():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not _is_plain(definition, field):
                continue
            attribute = cast(StrawberryField, definition).python_name
            plain = _plain_leaf(attribute, field.type) or _plain_object(
                attribute, field.type, objects
            )
            if plain is not None:
                yield (type_.name, name), plain


def _is_plain(definition: object, field: GraphQLField) -> bool:
    # Strawberry resolves a basic field (no resolver, no field extension, no exception
    # handler: its resolver marked default) with its default resolver: getattr unless the
    # schema's config says otherwise.
    return (
        isinstance(definition, StrawberryField)
        and definition.is_basic_field
        and definition.default_resolver is getattr
        and getattr(field.resolve, "_is_default", False)
        and not field.args
    )


def _unwrapped(type_: GraphQLOutputType) -> tuple[bool, GraphQLOutputType]:
    """Whether ``type_`` is non-null, and the type it wraps (or itself)."""
    if isinstance(type_, GraphQLNonNull):
        return True, type_.of_type
    return False, type_


def _plain_leaf(attribute: str, return_type: GraphQLOutputType) -> PlainLeaf | None:
    non_null, leaf_type = _unwrapped(return_type)
    if not is_leaf_type(leaf_type):
        return None
    return PlainLeaf(attribute, leaf_type, return_type, non_null)


def _plain_object(
    attribute: str, return_type: GraphQLOutputType, objects: frozenset[str]
) -> PlainObject | None:
    """An object, or a list of objects (not of lists), of a plainly checked type."""
    non_null, type_ = _unwrapped(return_type)
    is_list = isinstance(type_, GraphQLList)
    item_type, item_non_null = type_, False
    if isinstance(type_, GraphQLList):
        item_type = type_.of_type
        item_non_null, type_ = _unwrapped(item_type)
    if not isinstance(type_, GraphQLObjectType) or type_.name not in objects:
        return None
    return PlainObject(attribute, type_, return_type, non_null, is_list, item_type, item_non_null)
