"""Which kio class describes a request or response of an API and version (the broker and the
client both look them up here), and a few constants the protocol gives meaning to."""

from __future__ import annotations

import io
import uuid
from functools import cache

from kio.index import load_payload_module
from kio.serial import entity_writer
from kio.static.constants import EntityType

# "Not asked for": the authorized-operations fields when the request did not include them.
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
# The null topic id.
ZERO_UUID = uuid.UUID(int=0)


def _payload_entity(api_key: int, version: int, entity_type: EntityType) -> type:
    module = load_payload_module(api_key, version, entity_type)
    for value in vars(module).values():
        if getattr(value, "__type__", None) == entity_type and value.__module__ == module.__name__:
            return value
    raise LookupError(f"no {entity_type.name} entity in {module.__name__}")


@cache
def request_class(api_key: int, version: int) -> type:
    return _payload_entity(api_key, version, EntityType.request)


@cache
def response_class(api_key: int, version: int) -> type:
    return _payload_entity(api_key, version, EntityType.response)


def encoded(entity) -> bytes:
    """The bytes kio writes for an entity (kio caches a writer per class)."""
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    return buffer.getvalue()
