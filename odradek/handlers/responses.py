"""Build a kio response of any version from one set of keyword values.

kio generates one dataclass per API version; fields differ between versions and required fields
have no defaults. `build` keeps only the fields the chosen version has, so a handler states its
answer once and the version gates live in kio's schemas, not in `if version >= n` ladders.
"""

from __future__ import annotations

import sys
from functools import cache


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
