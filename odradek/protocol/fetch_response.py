"""A Fetch response as the handler answers it (FetchAnswer), written as chunks: the encoded fields,
with each partition's records between them as they came from the log (a FileRegion,
file_region.py, or bytes), never copied into an encoding buffer (DESIGN §4, the fetch hot path).

The answer is plain tuples, not kio entities: a Fetch of 1,000 partitions would otherwise build
and then walk 1,000 kio PartitionData objects. The fields are written here with struct for every
version the broker serves (v4-v17); the joined chunks are byte for byte what kio writes for the
same response (a unit test checks every version).
"""

from __future__ import annotations

import struct
import uuid
from typing import NamedTuple

from odradek.protocol.file_region import FileRegion
from odradek.protocol.frames import array_length, unsigned_varint

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_HEAD_V7 = struct.Struct(">ihi")  # throttle_time_ms, error_code, session_id
_PARTITION_HEAD_V4 = struct.Struct(">ihqq")  # partition_index, error_code, high_watermark, last_stable_offset
_PARTITION_HEAD_V5 = struct.Struct(">ihqqq")  # and log_start_offset
_ABORTED_TRANSACTION = struct.Struct(">qq")  # producer_id, first_offset
# v12+: the partition's tagged fields holding only diverging_epoch (tag 0, 13 bytes: epoch,
# end_offset, its own empty tagged fields)
_DIVERGING_EPOCH_TAG = struct.Struct(">BBBiqB")
_EMPTY_TAGS = b"\x00"
_ZERO_UUID = uuid.UUID(int=0)


class FetchedPartition(NamedTuple):
    """One partition of a Fetch response."""

    index: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    aborted: list[tuple[int, int]] | None  # (producer id, first offset); None unless read_committed
    preferred_read_replica: int  # -1: read here
    records: FileRegion | bytes
    diverging_epoch: tuple[int, int] | None  # (epoch, end offset) where the fetcher's log leaves ours


class FetchAnswer(NamedTuple):
    """A Fetch response: `topics` is (topic name, or topic id from v13, its partitions) in order."""

    throttle_ms: int
    error_code: int
    session_id: int
    topics: list[tuple[str | uuid.UUID, list[FetchedPartition]]]

    def chunks(self, version: int) -> list:
        """The response body as a list of bytes-like chunks; records are chunks of their own."""
        flexible = version >= 12
        by_id = version >= 13
        if version >= 7:
            pending = bytearray(_HEAD_V7.pack(self.throttle_ms, self.error_code, self.session_id))
        else:
            pending = bytearray(_INT32.pack(self.throttle_ms))
        pending += array_length(len(self.topics), flexible)
        chunks: list = []
        head = _PARTITION_HEAD_V5 if version >= 5 else None
        for key, partitions in self.topics:
            pending += (key or _ZERO_UUID).bytes if by_id else _string(key, flexible)  # None: zeros, as kio writes
            pending += array_length(len(partitions), flexible)
            for (index, error_code, high_watermark, last_stable_offset, log_start_offset, aborted, preferred,
                 records, diverging) in partitions:
                if head is not None:
                    pending += head.pack(index, error_code, high_watermark, last_stable_offset, log_start_offset)
                else:
                    pending += _PARTITION_HEAD_V4.pack(index, error_code, high_watermark, last_stable_offset)
                if aborted is None:
                    pending += _null_length(flexible)
                else:
                    pending += array_length(len(aborted), flexible)
                    for producer_id, first_offset in aborted:
                        pending += _ABORTED_TRANSACTION.pack(producer_id, first_offset)
                        if flexible:
                            pending += _EMPTY_TAGS
                if version >= 11:
                    pending += _INT32.pack(preferred)
                size = len(records)
                pending += unsigned_varint(size + 1) if flexible else _INT32.pack(size)
                if size:
                    chunks.append(bytes(pending))
                    chunks.append(records)
                    pending = bytearray()
                if flexible:
                    if diverging is None:
                        pending += _EMPTY_TAGS
                    else:
                        pending += _DIVERGING_EPOCH_TAG.pack(1, 0, 13, diverging[0], diverging[1], 0)
            if flexible:
                pending += _EMPTY_TAGS  # the topic's tagged fields
        if flexible:
            pending += _EMPTY_TAGS  # the response's tagged fields
        chunks.append(bytes(pending))
        return chunks


def _string(text: str, flexible: bool) -> bytes:
    data = text.encode()
    return (unsigned_varint(len(data) + 1) if flexible else _INT16.pack(len(data))) + data


def _null_length(flexible: bool) -> bytes:
    """The length of a null array: varint 0 in flexible versions, else int32 -1."""
    return b"\x00" if flexible else b"\xff\xff\xff\xff"
