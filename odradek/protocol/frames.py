"""Request headers in, response frames out. No I/O: bytes to values and back.

Request header v1: api_key int16, api_version int16, correlation_id int32, client_id nullable string.
Request header v2 (flexible versions) adds tagged fields after client_id.
Response header v0: correlation_id int32; v1 adds an (empty) tagged-field section.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_HEADER_FIXED = struct.Struct(">hhih")
_INT32 = struct.Struct(">i")
_ERROR_ONLY = struct.Struct(">iih")


class FrameError(ValueError):
    """A frame that cannot be understood; the connection that sent it is closed."""


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int  # where the request body starts within the frame


def unsigned_varint(value: int) -> bytes:
    """The unsigned varint of flexible versions' lengths and tags."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def array_length(count: int, flexible: bool) -> bytes:
    """An array's length as encoded: an unsigned varint of count + 1 in flexible versions, else int32."""
    return unsigned_varint(count + 1) if flexible else struct.pack(">i", count)


def read_unsigned_varint(buffer, offset: int) -> tuple[int, int]:
    """(value, new offset); raises FrameError past the end or beyond 5 bytes."""
    value = 0
    shift = 0
    while True:
        if offset >= len(buffer):
            raise FrameError("truncated unsigned varint")
        byte = buffer[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 28:
            raise FrameError("unsigned varint longer than 5 bytes")


def parse_request_header(frame, flexible: bool | None = None) -> RequestHeader:
    """Parse the header; `flexible` says whether tagged fields follow client_id (header v2).

    With flexible=None only the fixed part and client_id are parsed (enough to route the request).
    """
    if len(frame) < _HEADER_FIXED.size:
        raise FrameError(f"request of {len(frame)} bytes is shorter than a request header")
    api_key, api_version, correlation_id, client_id_length = _HEADER_FIXED.unpack_from(frame, 0)
    offset = _HEADER_FIXED.size
    if client_id_length < 0:
        client_id = None
    else:
        end = offset + client_id_length
        if end > len(frame):
            raise FrameError("client_id runs past the end of the request")
        client_id = bytes(frame[offset:end]).decode("utf-8", "replace")
        offset = end
    if flexible:
        offset = skip_tagged_fields(frame, offset)
    return RequestHeader(api_key, api_version, correlation_id, client_id, offset)


def skip_tagged_fields(buffer, offset: int) -> int:
    """The offset after a tagged-field section (a header's); FrameError if it runs past the end."""
    count, offset = read_unsigned_varint(buffer, offset)
    for _ in range(count):
        _tag, offset = read_unsigned_varint(buffer, offset)
        size, offset = read_unsigned_varint(buffer, offset)
        offset += size
        if offset > len(buffer):
            raise FrameError("tagged field runs past the end of the header")
    return offset


def response_header(correlation_id: int, flexible: bool) -> bytes:
    """Response header v1 (flexible) or v0."""
    if flexible:
        return _INT32.pack(correlation_id) + b"\x00"
    return _INT32.pack(correlation_id)


def frame_size_prefix(size: int) -> bytes:
    return _INT32.pack(size)


def error_only_frame(correlation_id: int, error_code: int) -> bytes:
    """A complete response frame holding only an error code after a v0 header.

    The last resort for a request we cannot decode at all (unknown API key, a version no schema
    describes): clients read the error code first in most response layouts.
    """
    return _ERROR_ONLY.pack(6, correlation_id, error_code)
