"""The records of `__consumer_offsets`, in Kafka's own binary layout.

Keys start with an int16 version: 0/1 offset commit (group, topic, partition), 2 group metadata
(group). Values: offset commit v3 (offset, leader epoch, metadata, commit timestamp) and group
metadata v3 (protocol type, generation, protocol, leader, state timestamp, members). A null
value is a tombstone. Using Kafka's layout means Kafka's tools can read the topic.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_VALUE_VERSION = 3

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


@dataclass(frozen=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1


@dataclass(frozen=True)
class OffsetKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True)
class GroupKey:
    group_id: str


@dataclass
class MemberSnapshot:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass
class GroupSnapshot:
    protocol_type: str
    generation_id: int
    protocol_name: str | None
    leader_id: str | None
    state_timestamp_ms: int
    members: list[MemberSnapshot] = field(default_factory=list)


class RecordFormatError(ValueError):
    pass


# -- writing ------------------------------------------------------------------------------


def _string(value: str | None) -> bytes:
    if value is None:
        return _I16.pack(-1)
    data = value.encode()
    return _I16.pack(len(data)) + data


def _bytes(value: bytes) -> bytes:
    return _I32.pack(len(value)) + value


def offset_key(group_id: str, topic: str, partition: int) -> bytes:
    return _I16.pack(OFFSET_COMMIT_KEY_VERSION) + _string(group_id) + _string(topic) + _I32.pack(partition)


def offset_value(value: OffsetAndMetadata) -> bytes:
    return (
        _I16.pack(OFFSET_COMMIT_VALUE_VERSION)
        + _I64.pack(value.offset)
        + _I32.pack(value.leader_epoch)
        + _string(value.metadata)
        + _I64.pack(value.commit_timestamp_ms)
    )


def group_key(group_id: str) -> bytes:
    return _I16.pack(GROUP_METADATA_KEY_VERSION) + _string(group_id)


def group_value(snapshot: GroupSnapshot) -> bytes:
    parts = [
        _I16.pack(GROUP_METADATA_VALUE_VERSION),
        _string(snapshot.protocol_type),
        _I32.pack(snapshot.generation_id),
        _string(snapshot.protocol_name),
        _string(snapshot.leader_id),
        _I64.pack(snapshot.state_timestamp_ms),
        _I32.pack(len(snapshot.members)),
    ]
    for member in snapshot.members:
        parts += [
            _string(member.member_id),
            _string(member.group_instance_id),
            _string(member.client_id),
            _string(member.client_host),
            _I32.pack(member.rebalance_timeout_ms),
            _I32.pack(member.session_timeout_ms),
            _bytes(member.subscription),
            _bytes(member.assignment),
        ]
    return b"".join(parts)


# -- reading ------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise RecordFormatError(f"record ends at byte {len(self.data)}, wanted {size} more at {self.offset}")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def i16(self) -> int:
        return _I16.unpack(self._take(2))[0]

    def i32(self) -> int:
        return _I32.unpack(self._take(4))[0]

    def i64(self) -> int:
        return _I64.unpack(self._take(8))[0]

    def string(self) -> str | None:
        length = self.i16()
        return None if length < 0 else self._take(length).decode()

    def bytes(self) -> bytes:
        length = self.i32()
        return b"" if length < 0 else bytes(self._take(length))


def decode_key(data: bytes) -> OffsetKey | GroupKey | None:
    """The key, or None for key versions this broker does not use (transaction markers etc.)."""
    reader = _Reader(data)
    version = reader.i16()
    if version in (0, 1):
        return OffsetKey(reader.string() or "", reader.string() or "", reader.i32())
    if version == 2:
        return GroupKey(reader.string() or "")
    return None


def decode_offset_value(data: bytes) -> OffsetAndMetadata:
    reader = _Reader(data)
    version = reader.i16()
    if version not in (1, 3):
        raise RecordFormatError(f"offset commit value version {version} is not supported")
    offset = reader.i64()
    leader_epoch = reader.i32() if version >= 3 else -1
    metadata = reader.string() or ""
    commit_timestamp = reader.i64()
    return OffsetAndMetadata(offset, leader_epoch, metadata, commit_timestamp)


def decode_group_value(data: bytes) -> GroupSnapshot:
    reader = _Reader(data)
    version = reader.i16()
    if version != GROUP_METADATA_VALUE_VERSION:
        raise RecordFormatError(f"group metadata value version {version} is not supported")
    snapshot = GroupSnapshot(
        protocol_type=reader.string() or "",
        generation_id=reader.i32(),
        protocol_name=reader.string(),
        leader_id=reader.string(),
        state_timestamp_ms=reader.i64(),
    )
    for _ in range(reader.i32()):
        snapshot.members.append(
            MemberSnapshot(
                member_id=reader.string() or "",
                group_instance_id=reader.string(),
                client_id=reader.string() or "",
                client_host=reader.string() or "",
                rebalance_timeout_ms=reader.i32(),
                session_timeout_ms=reader.i32(),
                subscription=reader.bytes(),
                assignment=reader.bytes(),
            )
        )
    return snapshot


def java_string_hash(value: str) -> int:
    """Java's String.hashCode (UTF-16 code units, int32 overflow): how Kafka places groups."""
    h = 0
    data = value.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for_group(group_id: str, partitions: int) -> int:
    """Kafka's Utils.abs(groupId.hashCode) % partitions (abs of Integer.MIN_VALUE is 0)."""
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions
