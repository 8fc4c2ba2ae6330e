"""Walk a request body against its kio schema before kio decodes it, checking every length.

Why: kio's native reader reserves memory for an array's declared length before reading it, so a
5-byte body declaring 2**32 elements aborts the whole process (an allocation failure cannot be
caught). And kio refuses tagged fields it does not know, which Kafka's protocol says to skip.
The guard checks that every declared array count and byte length fits in the bytes that remain
(each array element takes at least one byte), that a field the schema says cannot be null is not
sent as null (Kafka's parser refuses those too; kio would hand the handler a None), and returns
the body with unknown tagged fields removed when there are any. It reads only lengths: cost is a few field steps per entity, no
copying unless an unknown tag was found.
"""

from __future__ import annotations

import dataclasses
import struct
from functools import cache
from types import EllipsisType, NoneType, UnionType
from typing import Callable, Union, get_args, get_origin

from odradek.protocol.frames import FrameError, read_unsigned_varint, unsigned_varint

_FIXED_SIZES = {
    "int8": 1, "bool": 1, "uint8": 1,
    "int16": 2, "uint16": 2, "error_code": 2,
    "int32": 4, "uint32": 4, "timedelta_i32": 4,
    "int64": 8, "uint64": 8, "timedelta_i64": 8, "datetime_i64": 8, "float64": 8,
    "uuid": 16,
}
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")

# A step reads one value at `offset` and returns the offset after it.
Step = Callable[[memoryview, int, list], int]


def _need(buffer, offset: int, size: int, what: str) -> None:
    if size < 0 or offset + size > len(buffer):
        raise FrameError(f"{what} of {size} bytes at byte {offset} runs past the end of the request ({len(buffer)} bytes)")


def _fixed(size: int, name: str) -> Step:
    def step(buffer, offset, unknown):
        _need(buffer, offset, size, name)
        return offset + size

    step.fixed_size = size  # consecutive fixed fields are checked as one (entity_step)
    step.field_names = name
    return step


def _merge_fixed(steps: list[Step]) -> list[Step]:
    """Runs of fixed-size fields become one step: a partition of a Fetch is one length check, not six."""
    merged: list[Step] = []
    for step in steps:
        previous = merged[-1] if merged else None
        if hasattr(step, "fixed_size") and previous is not None and hasattr(previous, "fixed_size"):
            merged[-1] = _fixed(previous.fixed_size + step.fixed_size, f"{previous.field_names}, {step.field_names}")
        else:
            merged.append(step)
    return merged


def _null(name: str) -> FrameError:
    return FrameError(f"non-nullable field {name} was serialized as null")


def _length_prefixed(flexible: bool, kafka_type: str, name: str, nullable: bool = True) -> Step:
    if flexible:

        def step(buffer, offset, unknown):
            length, offset = read_unsigned_varint(buffer, offset)
            if length == 0 and not nullable:
                raise _null(name)
            _need(buffer, offset, max(length - 1, 0), name)
            return offset + max(length - 1, 0)

        return step
    prefix = _INT16 if kafka_type == "string" else _INT32

    def step(buffer, offset, unknown):
        _need(buffer, offset, prefix.size, name)
        (length,) = prefix.unpack_from(buffer, offset)
        offset += prefix.size
        if length < -1:
            raise FrameError(f"{name} has negative length {length}")
        if length == -1 and not nullable:
            raise _null(name)
        _need(buffer, offset, max(length, 0), name)
        return offset + max(length, 0)

    return step


def _array(flexible: bool, element: Step, name: str, nullable: bool = True) -> Step:
    fixed_size = getattr(element, "fixed_size", None)

    def step(buffer, offset, unknown):
        if flexible:
            count, offset = read_unsigned_varint(buffer, offset)
            count -= 1
        else:
            _need(buffer, offset, 4, name)
            (count,) = _INT32.unpack_from(buffer, offset)
            offset += 4
            if count < -1:
                raise FrameError(f"array {name} has negative length {count}")
        if count == -1 and not nullable:
            raise _null(name)
        if count > len(buffer) - offset:
            raise FrameError(f"array {name} declares {count} elements but only {len(buffer) - offset} bytes remain")
        if fixed_size is not None and count > 0:
            _need(buffer, offset, count * fixed_size, f"{count} elements of array {name}")
            return offset + count * fixed_size
        for _ in range(count):
            offset = element(buffer, offset, unknown)
        return offset

    return step


def _nullable_entity(entity: Step, name: str) -> Step:
    def step(buffer, offset, unknown):
        _need(buffer, offset, 1, name)
        marker = buffer[offset]
        offset += 1
        return offset if marker == 0xFF else entity(buffer, offset, unknown)

    return step


def _inner_type(annotation):
    if get_origin(annotation) in (UnionType, Union):
        args = [a for a in get_args(annotation) if a is not NoneType]
        return args[0], True
    return annotation, False


def _field_step(field: dataclasses.Field, flexible: bool, is_tag: bool) -> Step:
    annotation, optional = _inner_type(field.type)
    kafka_type = field.metadata.get("kafka_type")
    if get_origin(annotation) is tuple:
        element_type, ellipsis = get_args(annotation)
        assert isinstance(ellipsis, EllipsisType) or ellipsis is Ellipsis
        element_type, element_optional = _inner_type(element_type)
        element = (
            entity_step(element_type)
            if dataclasses.is_dataclass(element_type)
            else _primitive(kafka_type, flexible, field.name, element_optional)
        )
        return _array(flexible, element, field.name, optional)
    if dataclasses.is_dataclass(annotation):
        entity = entity_step(annotation)
        return _nullable_entity(entity, field.name) if optional and not is_tag else entity
    return _primitive(kafka_type, flexible, field.name, optional)


def _primitive(kafka_type: str, flexible: bool, name: str, nullable: bool = True) -> Step:
    if kafka_type in _FIXED_SIZES:
        return _fixed(_FIXED_SIZES[kafka_type], name)
    if kafka_type in ("string", "bytes", "records"):
        # Records are nullable in every schema that has them (a produce may carry none).
        return _length_prefixed(flexible, kafka_type, name, nullable or kafka_type == "records")
    raise TypeError(f"no guard for kafka_type {kafka_type!r} of field {name}")


@cache
def entity_step(cls: type) -> Step:
    """The step that walks one encoded `cls`, recording unknown tagged fields in `unknown`."""
    flexible = cls.__flexible__
    steps: list[Step] = []
    tagged: dict[int, Step] = {}
    for field in dataclasses.fields(cls):
        tag = field.metadata.get("tag")
        if tag is None:
            steps.append(_field_step(field, flexible, False))
        else:
            tagged[int(tag)] = _field_step(field, flexible, True)
    steps = _merge_fixed(steps)
    if not flexible and len(steps) == 1 and hasattr(steps[0], "fixed_size"):
        return steps[0]  # a fixed-size entity: an array of them is checked in one step

    def step(buffer, offset, unknown):
        for field_step in steps:
            offset = field_step(buffer, offset, unknown)
        if not flexible:
            return offset
        if offset < len(buffer) and buffer[offset] == 0:
            return offset + 1  # no tagged fields, the common case
        section_start = offset
        count, offset = read_unsigned_varint(buffer, offset)
        count_end = offset
        dropped = []
        if count > len(buffer) - offset:
            raise FrameError(f"{count} tagged fields declared but only {len(buffer) - offset} bytes remain")
        for _ in range(count):
            field_start = offset
            tag, offset = read_unsigned_varint(buffer, offset)
            size, offset = read_unsigned_varint(buffer, offset)
            _need(buffer, offset, size, f"tagged field {tag}")
            end = offset + size
            known = tagged.get(tag)
            if known is None:
                dropped.append((field_start, end))
            else:
                nested: list = []
                if known(buffer, offset, nested) != end:
                    raise FrameError(f"tagged field {tag} does not fill its declared {size} bytes")
                if nested:
                    raise FrameError(f"tagged field {tag} holds tagged fields this broker does not know")
            offset = end
        if dropped:
            unknown.append((section_start, count_end, count - len(dropped), dropped))
        return offset

    return step


def guard_request(body, cls: type):
    """`body` (or a copy without unknown tagged fields) after checking every length; FrameError if bad."""
    view = memoryview(body)
    unknown: list = []
    end = entity_step(cls)(view, 0, unknown)
    if end > len(view):
        raise FrameError("request body is shorter than its schema")
    if not unknown:
        return body
    return _without_unknown_tags(view, unknown)


def _without_unknown_tags(view: memoryview, sections) -> bytes:
    out = bytearray()
    position = 0
    for section_start, count_end, kept, dropped in sorted(sections):
        out += view[position:section_start]
        out += unsigned_varint(kept)
        position = count_end
        for start, end in dropped:
            out += view[position:start]
            position = end
    out += view[position:]
    return bytes(out)

