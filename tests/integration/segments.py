"""Reads RecordBatch v2 headers straight from a partition's `.log` files, as kafka-dump-log would.

Used where a test must see what the broker stored, not what a client decoded: that a batch is
really compressed with the requested codec, that an idempotent batch carries a producer id.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordCount
_HEADER = struct.Struct(">qiibIhiqqqhii")
CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


@dataclass(frozen=True)
class BatchHeader:
    base_offset: int
    magic: int
    compression: str
    last_offset_delta: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int


def partition_dir(log_dir: Path, topic: str, partition: int) -> Path:
    return log_dir / f"{topic}-{partition}"


def batch_headers(log_dir: Path, topic: str, partition: int) -> list[BatchHeader]:
    directory = partition_dir(log_dir, topic, partition)
    segments = sorted(directory.glob("*.log"))
    if not segments:
        raise AssertionError(f"no .log segment in {directory} (contents: {sorted(p.name for p in directory.iterdir()) if directory.exists() else 'missing'})")
    headers: list[BatchHeader] = []
    for segment in segments:
        data = segment.read_bytes()
        position = 0
        while position + _HEADER.size <= len(data):
            fields = _HEADER.unpack_from(data, position)
            (base_offset, batch_length, _epoch, magic, _crc, attributes, last_offset_delta,
             _base_ts, _max_ts, producer_id, producer_epoch, base_sequence, record_count) = fields
            if batch_length <= 0:
                break  # preallocated, zero-filled tail
            headers.append(BatchHeader(
                base_offset, magic, CODECS.get(attributes & 0x7, f"unknown({attributes & 0x7})"),
                last_offset_delta, producer_id, producer_epoch, base_sequence, record_count,
            ))
            position += 12 + batch_length
    return headers
