"""A Produce response (v0-v12) encoded with struct, byte for byte what kio writes.

The Produce answer is the broker's most frequent one: a Java producer sends a request per 16 KiB
batch, and kio's generic writer spent about 30 us on each small answer (a sixth of the broker's
time per request). The handler answers with plain tuples (ProduceAnswer), written here with struct
for every version the broker serves, as the Fetch answer is (fetch_response.py); building kio
entities for them cost another ~15 us per request in the running broker. A kio ProduceResponse
(the dispatcher's answer when a handler fails) is encoded the same way for its common partition
entry; anything rarer (record errors, a current leader, node endpoints) by kio. Unit tests check
every version against kio.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from odradek.protocol.frames import array_length, unsigned_varint
from odradek.protocol.schemas import encoded

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_EMPTY_TAGS = b"\x00"
# index, error code, base offset, log append time, log start offset
_PARTITION_V5 = struct.Struct(">ihqqq")
_PARTITION_V2 = struct.Struct(">ihqq")
_PARTITION_V0 = struct.Struct(">ihq")
_NO_LEADER = (-1, -1)  # LeaderIdAndEpoch's default: the tagged field is then left out


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


def _append_time_ms(value) -> int:
    return -1 if value is None else round(value.timestamp() * 1000)


def _partition(entry, version: int) -> bytes:
    if version >= 10:
        leader = entry.current_leader
        if (leader.leader_id, leader.leader_epoch) != _NO_LEADER:
            return encoded(entry)
    if version >= 8:
        if entry.record_errors or entry.error_message is not None:
            return encoded(entry)
        fixed = _PARTITION_V5.pack(entry.index, entry.error_code, entry.base_offset,
                                   _append_time_ms(entry.log_append_time), entry.log_start_offset)
        # no record errors (an empty array), a null error message, and (flexible) no tagged fields
        return fixed + (b"\x01\x00\x00" if version >= 9 else b"\x00\x00\x00\x00\xff\xff")
    if version >= 5:
        return _PARTITION_V5.pack(entry.index, entry.error_code, entry.base_offset,
                                  _append_time_ms(entry.log_append_time), entry.log_start_offset)
    if version >= 2:
        return _PARTITION_V2.pack(entry.index, entry.error_code, entry.base_offset, _append_time_ms(entry.log_append_time))
    return _PARTITION_V0.pack(entry.index, entry.error_code, entry.base_offset)


def produce_response_body(response, version: int) -> bytes:
    """The response body (without header) of a kio ProduceResponse of `version`."""
    if version >= 13 or (version >= 10 and response.node_endpoints):
        return encoded(response)
    flexible = version >= 9
    parts = [array_length(len(response.responses), flexible)]
    for topic in response.responses:
        parts.append(_string(topic.name, flexible))
        parts.append(array_length(len(topic.partition_responses), flexible))
        parts.extend(_partition(entry, version) for entry in topic.partition_responses)
        if flexible:
            parts.append(_EMPTY_TAGS)
    if version >= 1:
        parts.append(_INT32.pack(round(response.throttle_time.total_seconds() * 1000)))
    if flexible:
        parts.append(_EMPTY_TAGS)
    return b"".join(parts)
