"""Produce v0-v2: advertised for old librdkafka's feature detection, refused when used.

Kafka 4 removed message formats v0/v1. We decode just enough of such a request (topics and
partitions) to answer every partition with UNSUPPORTED_VERSION in the layout of the version asked:
v0 (partition, error, base offset), v1 adds throttle time, v2 adds log-append time.
"""

from __future__ import annotations

import struct

from odradek.protocol.errors import ErrorCode

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def _read_string(body, offset: int) -> tuple[bytes, int]:
    (length,) = _INT16.unpack_from(body, offset)
    offset += 2
    if length < 0 or offset + length > len(body):
        raise ValueError("bad string length")
    return bytes(body[offset : offset + length]), offset + length


def rejected_produce_body(body, version: int) -> bytes:
    offset = 2 + 4  # acks, timeout
    (topic_count,) = _INT32.unpack_from(body, offset)
    offset += 4
    if topic_count < 0 or topic_count > len(body):
        raise ValueError("bad topic count")
    out = [_INT32.pack(topic_count)]
    for _ in range(topic_count):
        name, offset = _read_string(body, offset)
        (partition_count,) = _INT32.unpack_from(body, offset)
        offset += 4
        if partition_count < 0 or partition_count > len(body):
            raise ValueError("bad partition count")
        out.append(_INT16.pack(len(name)) + name + _INT32.pack(partition_count))
        for _ in range(partition_count):
            (partition,) = _INT32.unpack_from(body, offset)
            (size,) = _INT32.unpack_from(body, offset + 4)
            offset += 8 + max(size, 0)
            if offset > len(body):
                raise ValueError("message set runs past the end")
            entry = struct.pack(">ihq", partition, ErrorCode.unsupported_version, -1)
            if version >= 2:
                entry += struct.pack(">q", -1)
            out.append(entry)
    if version >= 1:
        out.append(_INT32.pack(0))
    return b"".join(out)
