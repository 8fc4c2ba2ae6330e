"""A read-only view of v2 RecordBatch headers, and the checks a broker makes before appending.

Layout (big-endian), offsets from the start of the batch:
  baseOffset int64 @0, batchLength int32 @8 (bytes after this field), partitionLeaderEpoch int32 @12,
  magic int8 @16, crc uint32 @17, attributes int16 @21, lastOffsetDelta int32 @23,
  baseTimestamp int64 @27, maxTimestamp int64 @35, producerId int64 @43, producerEpoch int16 @51,
  baseSequence int32 @53, recordCount int32 @57, records @61.
The CRC32C covers attributes .. end, so baseOffset and partitionLeaderEpoch can be patched in place.
Records themselves are never decoded here: batches pass through byte for byte.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from odradek.protocol.checksum import crc32c

from odradek.protocol.errors import ErrorCode, KafkaError

BATCH_HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes not counted by batchLength
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
TIMESTAMP_TYPE_FLAG = 0x08
TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20
COMPRESSION_MASK = 0x07
NO_PRODUCER_ID = -1

_HEADER = struct.Struct(">qiibIhiqqqhii")
_BASE_OFFSET = struct.Struct(">q")
_BASE_OFFSET_AND_EPOCH = struct.Struct(">qii")  # baseOffset, batchLength, partitionLeaderEpoch
_LENGTH = struct.Struct(">qi")


class BatchHeader(NamedTuple):
    """The fixed 61-byte header of one v2 RecordBatch, plus where it sits in its buffer."""

    position: int
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_FLAG)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) % (1 << 31)


def read_batch_header(buffer, position: int = 0, file_position: int | None = None) -> BatchHeader:
    """The header at `position`; the caller guarantees BATCH_HEADER_SIZE bytes are there. Its
    `position` is `file_position` when given (a header read on its own from a file)."""
    return BatchHeader(position if file_position is None else file_position, *_HEADER.unpack_from(buffer, position))


def read_batch_size(buffer, position: int) -> int | None:
    """Size of the batch at `position` from its first 12 bytes, or None if fewer are there."""
    if len(buffer) - position < LOG_OVERHEAD:
        return None
    return _LENGTH.unpack_from(buffer, position)[1] + LOG_OVERHEAD


def batch_crc_is_valid(buffer, header: BatchHeader) -> bool:
    start = header.position + ATTRIBUTES_OFFSET
    end = header.position + header.size
    return crc32c(memoryview(buffer)[start:end]) == header.crc


def check_batch(buffer, header: BatchHeader, available: int) -> str | None:
    """Why the batch at header.position is not a valid v2 batch, or None if it is.

    `available` is how many bytes from header.position belong to this buffer.
    """
    if header.batch_length < BATCH_HEADER_SIZE - LOG_OVERHEAD:
        return f"batch length {header.batch_length} is below the minimum {BATCH_HEADER_SIZE - LOG_OVERHEAD}"
    if header.size > available:
        return f"batch of {header.size} bytes is cut short: only {available} bytes present"
    if header.magic != 2:
        return f"magic byte is {header.magic}, expected 2"
    if header.record_count != header.last_offset_delta + 1:
        return (
            f"record count {header.record_count} does not match last offset delta "
            f"{header.last_offset_delta} + 1"
        )
    if not batch_crc_is_valid(buffer, header):
        return "CRC32C mismatch"
    return None


def validate_batches(records) -> list[BatchHeader]:
    """Headers of every batch in a produce request's `records`, or CORRUPT_MESSAGE.

    One call per partition per request; it walks batch headers only (no per-record work).
    """
    headers: list[BatchHeader] = []
    total = len(records)
    position = 0
    if total == 0:
        raise KafkaError(ErrorCode.corrupt_message, "produce request carried no record batch")
    while position < total:
        if total - position < BATCH_HEADER_SIZE:
            if total - position >= MAGIC_OFFSET + 1 and records[position + MAGIC_OFFSET] != 2:
                raise KafkaError(
                    ErrorCode.corrupt_message,
                    f"magic byte is {records[position + MAGIC_OFFSET]}, expected 2",
                )
            raise KafkaError(
                ErrorCode.corrupt_message,
                f"{total - position} trailing bytes are too few for a batch header",
            )
        header = read_batch_header(records, position)
        problem = check_batch(records, header, total - position)
        if problem is not None:
            raise KafkaError(ErrorCode.corrupt_message, problem)
        headers.append(header)
        position += header.size
    return headers


def patch_base_offsets(buffer: bytearray, headers: list[BatchHeader], first_offset: int, leader_epoch: int) -> int:
    """Assign consecutive offsets to the batches in `buffer`, in place. Returns the next offset."""
    offset = first_offset
    for header in headers:
        _BASE_OFFSET.pack_into(buffer, header.position, offset)
        struct.pack_into(">i", buffer, header.position + 12, leader_epoch)
        offset += header.last_offset_delta + 1
    return offset


# --- Records inside a batch: decoded only for the console tools, ListOffsets and compaction. ---
#
# Record layout (v2), all varints zigzag-encoded:
#   length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
#   keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
#   headerCount varint, then per header: keyLength varint, key (utf-8), valueLength varint, value.
# Produce and fetch never come here: they move batches as bytes.


class Record(NamedTuple):
    """One decoded record; `offset` and `timestamp` are absolute."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple = ()


def _read_varint(buffer, position: int) -> tuple[int, int]:
    """A zigzag varint at `position`: (value, next position)."""
    result = 0
    shift = 0
    while True:
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise KafkaError(ErrorCode.corrupt_message, f"varint longer than 10 bytes ending at byte {position}")
    return (result >> 1) ^ -(result & 1), position


def _write_varint(out: bytearray, value: int) -> None:
    zigzag = (value << 1) ^ (value >> 63)
    zigzag &= (1 << 64) - 1
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def _read_bytes(buffer, position: int) -> tuple[bytes | None, int]:
    length, position = _read_varint(buffer, position)
    if length < 0:
        return None, position
    if position + length > len(buffer):
        raise KafkaError(ErrorCode.corrupt_message, f"field of {length} bytes at byte {position} runs past the batch")
    return bytes(buffer[position : position + length]), position + length


def _write_bytes(out: bytearray, value: bytes | None) -> None:
    if value is None:
        _write_varint(out, -1)
    else:
        _write_varint(out, len(value))
        out += value


def decode_records(buffer, header: BatchHeader) -> list[Record]:
    """Every record of the batch at header.position, decompressed; CORRUPT_MESSAGE if malformed."""
    from odradek.protocol.compression import decompress

    start = header.position + BATCH_HEADER_SIZE
    end = header.position + header.size
    body = decompress(header.compression, memoryview(buffer)[start:end])
    records: list[Record] = []
    position = 0
    log_append_time = header.is_log_append_time
    try:
        for _ in range(header.record_count):
            length, position = _read_varint(body, position)
            record_end = position + length
            position += 1  # attributes: unused in v2
            timestamp_delta, position = _read_varint(body, position)
            offset_delta, position = _read_varint(body, position)
            key, position = _read_bytes(body, position)
            value, position = _read_bytes(body, position)
            header_count, position = _read_varint(body, position)
            headers = []
            for _ in range(header_count):
                header_key, position = _read_bytes(body, position)
                header_value, position = _read_bytes(body, position)
                headers.append(((header_key or b"").decode("utf-8", "replace"), header_value))
            if position != record_end:
                raise KafkaError(
                    ErrorCode.corrupt_message,
                    f"record declared {length} bytes but its fields took {length + position - record_end}",
                )
            timestamp = header.max_timestamp if log_append_time else header.base_timestamp + timestamp_delta
            records.append(Record(header.base_offset + offset_delta, timestamp, key, value, tuple(headers)))
    except IndexError as exc:
        raise KafkaError(ErrorCode.corrupt_message, f"records run past the end of the batch at byte {position}") from exc
    return records


def encode_batch(
    records,
    *,
    base_offset: int = 0,
    codec: int = 0,
    timestamp_type: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
    transactional: bool = False,
    control: bool = False,
) -> bytes:
    """A valid v2 batch (CRC32C included) holding `records`.

    `records` are Record values (their `offset` is ignored: offset deltas are 0..n-1) or
    (timestamp, key, value[, headers]) tuples. The batch must hold at least one record.
    """
    from odradek.protocol.compression import compress

    normalized = [r if isinstance(r, Record) else Record(0, *r) for r in records]
    if not normalized:
        raise ValueError("a record batch needs at least one record")
    base_timestamp = normalized[0].timestamp
    max_timestamp = max(r.timestamp for r in normalized)
    body = bytearray()
    record = bytearray()
    for delta, r in enumerate(normalized):
        record.clear()
        record.append(0)
        _write_varint(record, r.timestamp - base_timestamp)
        _write_varint(record, delta)
        _write_bytes(record, r.key)
        _write_bytes(record, r.value)
        _write_varint(record, len(r.headers))
        for header_key, header_value in r.headers:
            _write_bytes(record, header_key.encode("utf-8"))
            _write_bytes(record, header_value)
        _write_varint(body, len(record))
        body += record
    payload = compress(codec, body)
    attributes = (codec & COMPRESSION_MASK) | (TIMESTAMP_TYPE_FLAG if timestamp_type else 0)
    if transactional:
        attributes |= TRANSACTIONAL_FLAG
    if control:
        attributes |= CONTROL_FLAG
    batch = bytearray(BATCH_HEADER_SIZE)
    batch += payload
    count = len(normalized)
    _HEADER.pack_into(
        batch, 0,
        base_offset, len(batch) - LOG_OVERHEAD, partition_leader_epoch, 2, 0, attributes, count - 1,
        base_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence, count,
    )
    struct.pack_into(">I", batch, CRC_OFFSET, crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:]))
    return bytes(batch)


# Public names of the varint codec, for code that walks or rewrites records itself (the cleaner).
read_varint = _read_varint
write_varint = _write_varint


def assemble_batch(
    records_bytes,
    *,
    base_offset: int,
    record_count: int,
    attributes: int,
    base_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    partition_leader_epoch: int,
) -> bytes:
    """A v2 batch around records already encoded (each with its length prefix, offset deltas
    0..record_count-1 and timestamp deltas from `base_timestamp`), compressed with the codec in
    `attributes`, CRC32C included. The records are not looked at: this is encode_batch for
    callers that kept the records' bytes."""
    from odradek.protocol.compression import compress

    payload = compress(attributes & COMPRESSION_MASK, records_bytes)
    batch = bytearray(BATCH_HEADER_SIZE)
    batch += payload
    _HEADER.pack_into(
        batch, 0,
        base_offset, len(batch) - LOG_OVERHEAD, partition_leader_epoch, 2, 0, attributes, record_count - 1,
        base_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence, record_count,
    )
    struct.pack_into(">I", batch, CRC_OFFSET, crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:]))
    return bytes(batch)


# --- Transaction markers: the control batches that end a transaction on a partition. -----------
#
# One record; key = version int16 (0) | type int16 (0 ABORT, 1 COMMIT);
# value = version int16 (0) | coordinator epoch int32. The batch is transactional and control,
# carries the transaction's producer id and epoch, and no sequence.

CONTROL_ABORT = 0
CONTROL_COMMIT = 1
_CONTROL_KEY = struct.Struct(">hh")
_MARKER_VALUE = struct.Struct(">hi")


def encode_marker_batch(producer_id: int, producer_epoch: int, committed: bool, coordinator_epoch: int, timestamp_ms: int) -> bytes:
    key = _CONTROL_KEY.pack(0, CONTROL_COMMIT if committed else CONTROL_ABORT)
    value = _MARKER_VALUE.pack(0, coordinator_epoch)
    return encode_batch(
        [Record(0, timestamp_ms, key, value)],
        producer_id=producer_id, producer_epoch=producer_epoch, transactional=True, control=True,
    )


def decode_marker(buffer, header: BatchHeader) -> tuple[bool, int] | None:
    """(committed, coordinator epoch) of a control batch holding a transaction marker; None for
    any other control record (e.g. KRaft's) or one that cannot be read."""
    try:
        records = decode_records(buffer, header)
    except KafkaError:
        return None
    return marker_of_record(records[0]) if records else None


def marker_of_record(record: Record) -> tuple[bool, int] | None:
    """(committed, coordinator epoch) of a decoded control record; None if it is no marker."""
    if record.key is None or len(record.key) < _CONTROL_KEY.size:
        return None
    _version, control_type = _CONTROL_KEY.unpack_from(record.key)
    if control_type not in (CONTROL_ABORT, CONTROL_COMMIT):
        return None
    value = record.value or b""
    coordinator_epoch = _MARKER_VALUE.unpack_from(value)[1] if len(value) >= _MARKER_VALUE.size else -1
    return control_type == CONTROL_COMMIT, coordinator_epoch
