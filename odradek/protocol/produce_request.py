"""Produce v3-v12 requests decoded here rather than by kio, so records are not copied.

kio's reader copies every partition's records into a new bytes object: for a producer that is a
copy of nearly the whole request. Here a partition's records are a view of the request frame
itself, and when the frame is a buffer this broker owns (a bytearray it received into, see
server/frame_protocol.py) the view is writable, so the log patches offsets into it and writes it
as it arrived. The result is plain tuples with the names of kio's ProduceRequest fields (a Java
producer sends a request per 16 KiB batch; kio's frozen entities cost a few microseconds more
each).

It does what protocol/request_guard.py does for kio's decoding, so a Produce is not walked
twice: every length is checked against the bytes that remain (an array declared longer than the
request fails at the first element that is not there; nothing is reserved for it), a null
topic_data, partition_data or topic name is refused as Kafka's parser refuses it, and tagged
fields are skipped (Produce defines none).
"""

from __future__ import annotations

import struct
from datetime import timedelta
from typing import NamedTuple

from odradek.protocol.frames import FrameError, read_unsigned_varint, skip_tagged_fields

API_KEY = 0
_HEAD = struct.Struct(">hi")  # acks, timeout_ms
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


class PartitionProduceData(NamedTuple):
    index: int
    records: memoryview | None


class TopicProduceData(NamedTuple):
    name: str
    partition_data: tuple[PartitionProduceData, ...]


class ProduceRequest(NamedTuple):
    transactional_id: str | None
    acks: int
    timeout: timedelta
    topic_data: tuple[TopicProduceData, ...]


def is_produce_request(cls: type) -> bool:
    return getattr(cls, "__api_key__", None) == API_KEY


def produce_request_reader(cls: type):
    """A reader with kio's signature, (buffer, offset) -> (request, offset after it), for the
    version of kio's ProduceRequest entity `cls`."""
    flexible = cls.__flexible__

    def read_length(buffer, offset: int) -> tuple[int, int]:
        """A string's, bytes' or array's length; -1 for null."""
        if flexible:
            length, offset = read_unsigned_varint(buffer, offset)
            return length - 1, offset
        if offset + 4 > len(buffer):
            raise FrameError("Produce request ends inside a length")
        return _INT32.unpack_from(buffer, offset)[0], offset + 4

    def read_string(buffer, offset: int) -> tuple[str | None, int]:
        if flexible:
            length, offset = read_length(buffer, offset)
        else:
            if offset + 2 > len(buffer):
                raise FrameError("Produce request ends inside a string length")
            (length,) = _INT16.unpack_from(buffer, offset)
            offset += 2
        if length < 0:
            return None, offset
        end = offset + length
        if end > len(buffer):
            raise FrameError("string runs past the end of the Produce request")
        return str(buffer[offset:end], "utf-8"), end

    def read(buffer, offset: int):
        view = memoryview(buffer)
        transactional_id, offset = read_string(view, offset)
        if offset + _HEAD.size > len(view):
            raise FrameError("Produce request ends before acks and timeout")
        acks, timeout_ms = _HEAD.unpack_from(view, offset)
        offset += _HEAD.size
        topic_count, offset = read_length(view, offset)
        if topic_count < 0:
            raise FrameError("non-nullable field topic_data was serialized as null")
        topics = []
        for _ in range(topic_count):
            name, offset = read_string(view, offset)
            if name is None:
                raise FrameError("non-nullable field name was serialized as null")
            partition_count, offset = read_length(view, offset)
            if partition_count < 0:
                raise FrameError("non-nullable field partition_data was serialized as null")
            partitions = []
            for _ in range(partition_count):
                if offset + 4 > len(view):
                    raise FrameError("Produce request ends inside a partition")
                (index,) = _INT32.unpack_from(view, offset)
                size, offset = read_length(view, offset + 4)
                if size < 0:
                    records = None
                else:
                    if offset + size > len(view):
                        raise FrameError("records run past the end of the Produce request")
                    records = view[offset : offset + size]
                    offset += size
                if flexible:
                    offset = skip_tagged_fields(view, offset)
                partitions.append(PartitionProduceData(index, records))
            if flexible:
                offset = skip_tagged_fields(view, offset)
            topics.append(TopicProduceData(name, tuple(partitions)))
        if flexible:
            offset = skip_tagged_fields(view, offset)
        return ProduceRequest(transactional_id, acks, timedelta(milliseconds=timeout_ms), tuple(topics)), offset

    return read
