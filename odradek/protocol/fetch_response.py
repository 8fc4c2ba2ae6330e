"""A Fetch response as chunks: the encoded fields, with each partition's records between them as
they came from the log (a FileRegion, file_region.py, or bytes), never copied into an encoding
buffer (DESIGN §4, the fetch hot path).

The fields around the records are written here with struct for every version the broker serves
(v4-v17); a partition with tagged fields set (a diverging epoch, which comes without records) is
written by kio. The joined chunks are byte for byte what kio writes for the whole response (a unit
test checks every version). A response this does not cover (a partition with records and tagged
fields, top-level tagged fields) gets None, and the caller encodes it whole.
"""

from __future__ import annotations

import dataclasses
import io
import operator
import struct
import uuid
from functools import cache

from kio.serial import entity_writer

from odradek.protocol.file_region import FileRegion
from odradek.protocol.frames import array_length, unsigned_varint

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_HEAD_V7 = struct.Struct(">ihi")  # throttle_time_ms, error_code, session_id
_PARTITION_HEAD_V4 = struct.Struct(">ihqq")  # partition_index, error_code, high_watermark, last_stable_offset
_PARTITION_HEAD_V5 = struct.Struct(">ihqqq")  # and log_start_offset
_ABORTED_TRANSACTION = struct.Struct(">qq")  # producer_id, first_offset
_EMPTY_TAGS = b"\x00"
_ZERO_UUID = uuid.UUID(int=0)


@cache
def _writer(cls):
    return entity_writer(cls)


def _string(text: str, flexible: bool) -> bytes:
    data = text.encode()
    return (unsigned_varint(len(data) + 1) if flexible else _INT16.pack(len(data))) + data


def fetch_response_chunks(response, version: int) -> list | None:
    """The response body as a list of bytes-like chunks, or None when it must be encoded whole."""
    flexible = version >= 12
    if flexible and getattr(response, "node_endpoints", ()):
        return None
    throttle_ms = round(response.throttle_time.total_seconds() * 1000)  # as kio rounds it
    if version >= 7:
        head = bytearray(_HEAD_V7.pack(throttle_ms, response.error_code, response.session_id))
    else:
        head = bytearray(_INT32.pack(throttle_ms))
    head += array_length(len(response.responses), flexible)
    chunks: list = []
    pending = head  # fields not yet followed by records
    for topic in response.responses:
        pending += (topic.topic_id or _ZERO_UUID).bytes if version >= 13 else _string(topic.topic, flexible)  # None: zeros, as kio writes
        pending += array_length(len(topic.partitions), flexible)
        for partition in topic.partitions:
            records = partition.records
            if not _has_tags(partition):  # the common shape, written here without kio
                pending += _partition_head(partition, version, flexible)
                if records is None:
                    pending += _null_length(flexible)
                else:
                    pending += unsigned_varint(len(records) + 1) if flexible else _INT32.pack(len(records))
                    if records:
                        chunks.append(bytes(pending))
                        chunks.append(records)
                        pending = bytearray()
                if flexible:
                    pending += _EMPTY_TAGS
                continue
            if records:
                return None  # tagged fields beside records: not a shape this covers
            buffer = io.BytesIO()  # a diverging epoch and no records: kio writes it
            _writer(type(partition))(buffer, partition)
            pending += buffer.getbuffer()
        if flexible:
            pending += _EMPTY_TAGS  # the topic's tagged fields
    if flexible:
        pending += _EMPTY_TAGS  # the response's tagged fields
    chunks.append(bytes(pending))
    return chunks


def with_records_read(response):
    """The response with each partition's records as bytes (a FileRegion read now): for encoding
    it whole, when fetch_response_chunks does not cover it."""
    def topic_read(topic):
        partitions = tuple(dataclasses.replace(partition, records=partition.records.read())
                           if type(partition.records) is FileRegion else partition for partition in topic.partitions)
        return dataclasses.replace(topic, partitions=partitions)
    return dataclasses.replace(response, responses=tuple(topic_read(topic) for topic in response.responses))


def _null_length(flexible: bool) -> bytes:
    """The length of a null array or null records: varint 0 in flexible versions, else int32 -1."""
    return b"\x00" if flexible else b"\xff\xff\xff\xff"


def _partition_head(partition, version: int, flexible: bool) -> bytes:
    """A partition's fields before its records, as kio writes them (no tagged fields set)."""
    if version >= 5:
        head = _PARTITION_HEAD_V5.pack(partition.partition_index, partition.error_code, partition.high_watermark,
                                       partition.last_stable_offset, partition.log_start_offset)
    else:
        head = _PARTITION_HEAD_V4.pack(partition.partition_index, partition.error_code, partition.high_watermark,
                                       partition.last_stable_offset)
    aborted = partition.aborted_transactions
    if aborted is None:
        head += _null_length(flexible)
    else:
        head += array_length(len(aborted), flexible)
        for transaction in aborted:
            head += _ABORTED_TRANSACTION.pack(transaction.producer_id, transaction.first_offset)
            if flexible:
                head += _EMPTY_TAGS
    if version >= 11:
        head += _INT32.pack(partition.preferred_read_replica)
    return head


@cache
def _tag_check(cls):
    """For a PartitionData class: whether an instance has a tagged field set (none before v12),
    tested with one attrgetter call rather than a loop over the fields."""
    fields = [f for f in dataclasses.fields(cls) if f.metadata.get("tag") is not None]
    if not fields:
        return lambda partition: False
    getter = operator.attrgetter(*(f.name for f in fields))
    defaults = fields[0].default if len(fields) == 1 else tuple(f.default for f in fields)
    return lambda partition: getter(partition) != defaults


def _has_tags(partition) -> bool:
    return _tag_check(type(partition))(partition)
