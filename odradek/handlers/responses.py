"""Build a kio response of any version from one set of keyword values.

kio generates one dataclass per API version; fields differ between versions and required fields
have no defaults. `build` keeps only the fields the chosen version has, so a handler states its
answer once and the version gates live in kio's schemas, not in `if version >= n` ladders.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime, timedelta, timezone
from functools import cache
from types import UnionType
from typing import Union, get_origin

from odradek.protocol.schemas import ZERO_UUID


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(cls.__dataclass_fields__)


def build(cls: type, **fields):
    """An instance of `cls` from the subset of `fields` that `cls` declares."""
    names = _field_names(cls)
    return cls(**{name: value for name, value in fields.items() if name in names})


def sibling(cls: type, name: str) -> type | None:
    """Another entity from the same kio schema module (the nested types of one version), or
    None when this version has no such entity."""
    return getattr(sys.modules[cls.__module__], name, None)


def has_field(cls: type, name: str) -> bool:
    return name in _field_names(cls)


_EMPTY_BY_KAFKA_TYPE = {
    "string": "",
    "bytes": b"",
    "records": b"",
    "bool": False,
    "uuid": ZERO_UUID,
    "timedelta_i32": timedelta(0),
    "timedelta_i64": timedelta(0),
    "datetime_i64": datetime.fromtimestamp(-0.001, tz=timezone.utc),  # -1 on the wire: no time, as Kafka sends
    "float64": 0.0,
}


def error_response(cls: type, code):
    """A well-formed response of `cls` carrying `code` wherever it has an error_code and
    nothing else: for a request whose handler failed unexpectedly (DESIGN §7)."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name == "error_code":
            values[f.name] = code
            continue
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        annotation = f.type
        if get_origin(annotation) in (UnionType, Union):
            values[f.name] = None
            continue
        if get_origin(annotation) is tuple:
            values[f.name] = ()
            continue
        if dataclasses.is_dataclass(annotation):
            values[f.name] = error_response(annotation, code)
            continue
        kafka_type = f.metadata.get("kafka_type", "")
        values[f.name] = _EMPTY_BY_KAFKA_TYPE.get(kafka_type, -1)
    return cls(**values)
