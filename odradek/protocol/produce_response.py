"""A Produce response (v3-v12) encoded with struct, byte for byte what kio writes.

The Produce answer is the broker's most frequent one: a Java producer sends a request per 16 KiB
batch, and kio's generic writer spent about 30 us on each small answer (a sixth of the broker's
time per request). The handler answers with plain tuples (ProduceAnswer), written here with struct
for every version the broker serves, as the Fetch answer is (fetch_response.py); building kio
entities for them cost another ~15 us per request in the running broker. The broker never sends
record errors, a current leader or node endpoints, so none are written. A kio ProduceResponse (the
dispatcher's answer when a handler fails) goes through kio's writer like any other response. A
unit test checks every version against kio.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from odradek.protocol.frames import array_length, unsigned_varint

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_EMPTY_TAGS = b"\x00"
# index, error code, base offset, log append time, log start offset
_PARTITION_V5 = struct.Struct(">ihqqq")
_PARTITION_V2 = struct.Struct(">ihqq")


class ProducedPartition(NamedTuple):
    """One partition of a Produce response."""

    index: int
    error_code: int
    base_offset: int
    log_append_time_ms: int  # -1: the producer's CreateTime stands
    log_start_offset: int
    error_message: str | None


class ProduceAnswer(NamedTuple):
    """A Produce response: `topics` is (topic name, its partitions) in the request's order."""

    throttle_ms: int
    topics: list[tuple[str, list[ProducedPartition]]]

    def body(self, version: int) -> bytes:
        """The response body (without header), v3-v12."""
        flexible = version >= 9
        parts = [array_length(len(self.topics), flexible)]
        for name, partitions in self.topics:
            parts.append(_string(name, flexible))
            parts.append(array_length(len(partitions), flexible))
            for index, error_code, base_offset, append_time, log_start_offset, message in partitions:
                if version >= 5:
                    parts.append(_PARTITION_V5.pack(index, error_code, base_offset, append_time, log_start_offset))
                else:
                    parts.append(_PARTITION_V2.pack(index, error_code, base_offset, append_time))
                if version >= 8:  # no record errors, the message, and (flexible) no tagged fields
                    if message is None:
                        parts.append(b"\x01\x00\x00" if flexible else b"\x00\x00\x00\x00\xff\xff")
                    else:
                        parts.append((b"\x01" if flexible else b"\x00\x00\x00\x00") + _string(message, flexible)
                                     + (_EMPTY_TAGS if flexible else b""))
            if flexible:
                parts.append(_EMPTY_TAGS)
        parts.append(_INT32.pack(self.throttle_ms))
        if flexible:
            parts.append(_EMPTY_TAGS)
        return b"".join(parts)


def _string(text: str, flexible: bool) -> bytes:
    data = text.encode()
    return (unsigned_varint(len(data) + 1) if flexible else _INT16.pack(len(data))) + data
