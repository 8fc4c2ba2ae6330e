"""Requests from plain values, for whichever version of an API the client and broker agreed on.

kio has one generated dataclass per API version. The typed helpers of the client describe a
request once, as nested dicts and lists using Kafka's field names (snake_case, as kio spells
them), and `build_request` turns that into the entity of the negotiated version: keys the version
does not have are dropped, fields the caller did not give take the schema default or a zero
value, milliseconds become the `timedelta` kio expects. Responses are kio entities; `field_ms`
and `read` smooth over fields that some versions lack. No I/O here.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import types
import typing
import uuid
from functools import cache
from typing import Any, Mapping

from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer

from odradek.protocol.schemas import request_class, response_class

__all__ = [
    "api_name",
    "build_request",
    "decode_response",
    "encode_entity",
    "kio_version_range",
    "request_class",
    "response_class",
    "to_ms",
]

_ZERO_BY_KAFKA_TYPE: dict[str, Any] = {
    "bool": False,
    "bytes": b"",
    "records": None,
    "string": "",
    "uuid": uuid.UUID(int=0),
    "float64": 0.0,
    "timedelta_i32": datetime.timedelta(0),
    "timedelta_i64": datetime.timedelta(0),
    "datetime_i64": datetime.datetime.fromtimestamp(0, datetime.timezone.utc),
}


def api_name(api_key: int) -> str:
    """Kafka's name of an API in kio's spelling (`create_topics`), or `api <key>`."""
    return api_key_map.get(api_key, f"api {api_key}")


@cache
def kio_version_range(api_key: int) -> tuple[int, int] | None:
    """The versions kio has schemas for, or None if kio does not know the API."""
    name = api_key_map.get(api_key)
    versions = schema_name_map.get(name) if name else None
    if not versions:
        return None
    return min(versions), max(versions)


def _entity_class(annotation: Any) -> type | None:
    """The dataclass inside `X`, `X | None` or `tuple[X, ...]`, if any."""
    if dataclasses.is_dataclass(annotation):
        return annotation  # type: ignore[return-value]
    for arg in typing.get_args(annotation):
        if arg is not Ellipsis and arg is not type(None):
            found = _entity_class(arg)
            if found is not None:
                return found
    return None


def _is_tuple(annotation: Any) -> bool:
    if typing.get_origin(annotation) is tuple:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_tuple(arg) for arg in typing.get_args(annotation))
    return False


def _is_optional(annotation: Any) -> bool:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return type(None) in typing.get_args(annotation)
    return False


def _convert(value: Any, field: dataclasses.Field) -> Any:
    annotation = field.type
    if value is None:
        return None
    nested = _entity_class(annotation)
    if nested is not None:
        if _is_tuple(annotation):
            return tuple(build_entity(nested, item) for item in value)
        return build_entity(nested, value)
    kafka_type = field.metadata.get("kafka_type")
    if kafka_type in ("timedelta_i32", "timedelta_i64") and isinstance(value, int):
        return datetime.timedelta(milliseconds=value)
    if kafka_type == "datetime_i64" and isinstance(value, int):
        return datetime.datetime.fromtimestamp(value / 1000, datetime.timezone.utc)
    if _is_tuple(annotation):
        return tuple(value)
    return value


def _zero(field: dataclasses.Field) -> Any:
    annotation = field.type
    if _is_optional(annotation):
        return None
    if _is_tuple(annotation):
        return ()
    nested = _entity_class(annotation)
    if nested is not None:
        return build_entity(nested, {})
    return _ZERO_BY_KAFKA_TYPE.get(field.metadata.get("kafka_type", ""), 0)


def build_entity(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance of the kio dataclass `cls` from `values` (see the module docstring)."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in values:
            kwargs[field.name] = _convert(values[field.name], field)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            kwargs[field.name] = _zero(field)
    return cls(**kwargs)


def build_request(api_key: int, version: int, values: Mapping[str, Any]) -> Any:
    """The kio request entity of `api_key` at `version` holding `values`."""
    return build_entity(request_class(api_key, version), values)


def encode_entity(entity: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def decode_response(api_key: int, version: int, data, offset: int = 0) -> Any:
    response, _size = entity_reader(lenient(response_class(api_key, version)))(data, offset)
    return response


@cache
def lenient(cls: type) -> type:
    """`cls` with its timestamp fields read as None where Kafka sends -1 (the delegation token
    APIs' error answers), which kio refuses for a field its schema does not mark nullable."""
    hints = typing.get_type_hints(cls)
    stamps = [f.name for f in dataclasses.fields(cls) if f.metadata.get("kafka_type") == "datetime_i64"
              and not _is_optional(hints[f.name])]
    if not stamps:
        return cls
    fields = [(f.name, hints[f.name] | None if f.name in stamps else hints[f.name], dataclasses.field(metadata=f.metadata))
              for f in dataclasses.fields(cls)]
    markers = {name: getattr(cls, name) for name in ("__type__", "__version__", "__flexible__", "__api_key__",
                                                      "__header_schema__") if hasattr(cls, name)}
    lenient = dataclasses.make_dataclass(cls.__name__, fields, namespace=markers, frozen=True, slots=True, kw_only=True)
    lenient.__module__ = cls.__module__
    return lenient


def to_ms(value: Any) -> int:
    """Milliseconds from a kio timedelta/datetime field (or an int passed through); -1 for None."""
    if value is None:
        return -1
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    return int(value)
