"""The records of `__consumer_offsets`, in Kafka's own binary layout.

Keys start with an int16 version: 0/1 offset commit (group, topic, partition), 2 group metadata
(group). Values: offset commit v3 (offset, leader epoch, metadata, commit timestamp) and group
metadata v3 (protocol type, generation, protocol, leader, state timestamp, members). A null
value is a tombstone. Using Kafka's layout means Kafka's tools can read the topic.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from odradek.protocol.frames import unsigned_varint

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


# -- consumer-protocol groups (KIP-848) -------------------------------------------------------
# Keys: int16 record type, then the group id (and member id) as int16-length strings.
# Values: int16 version 0, then a flexible body (compact strings and arrays, tagged fields).

CONSUMER_GROUP_METADATA = 3
CONSUMER_GROUP_MEMBER_METADATA = 5
CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA = 6
CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER = 7
CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT = 8
_CONSUMER_TYPES_WITH_MEMBER = {CONSUMER_GROUP_MEMBER_METADATA, CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT}
_CONSUMER_TYPES = {CONSUMER_GROUP_METADATA, CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA} | _CONSUMER_TYPES_WITH_MEMBER

TopicIdPartitions = dict  # uuid.UUID -> set[int]


@dataclass(frozen=True)
class ConsumerGroupKey:
    record_type: int
    group_id: str
    member_id: str | None = None


@dataclass(frozen=True)
class ClassicMemberMetadata:
    """A classic-protocol member hosted by a consumer group (KIP-848 online migration)."""

    session_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]  # (name, metadata) in the member's order of preference


@dataclass
class ConsumerMemberMetadata:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    rebalance_timeout_ms: int
    server_assignor: str | None
    classic: ClassicMemberMetadata | None = None  # tagged field 0 of Kafka's record
    subscribed_topic_regex: str | None = None


@dataclass
class ConsumerMemberAssignment:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: TopicIdPartitions
    pending_revocation: TopicIdPartitions


def consumer_key(record_type: int, group_id: str, member_id: str | None = None) -> bytes:
    key = _I16.pack(record_type) + _string(group_id)
    return key + _string(member_id) if record_type in _CONSUMER_TYPES_WITH_MEMBER else key



def _compact_string(value: str | None) -> bytes:
    if value is None:
        return b"\x00"
    data = value.encode()
    return unsigned_varint(len(data) + 1) + data


def _compact_array(items: list[bytes]) -> bytes:
    return unsigned_varint(len(items) + 1) + b"".join(items)


_NO_TAGS = b"\x00"
_VERSION_0 = _I16.pack(0)


def _topic_partitions(partitions: TopicIdPartitions) -> bytes:
    return _compact_array(
        [
            topic_id.bytes + _compact_array([_I32.pack(p) for p in sorted(parts)]) + _NO_TAGS
            for topic_id, parts in sorted(partitions.items(), key=lambda item: str(item[0]))
        ]
    )


def consumer_group_epoch_value(epoch: int) -> bytes:
    """ConsumerGroupMetadataValue (type 3) and ConsumerGroupTargetAssignmentMetadataValue (type 6)."""
    return _VERSION_0 + _I32.pack(epoch) + _NO_TAGS


def consumer_member_metadata_value(value: ConsumerMemberMetadata) -> bytes:
    return (
        _VERSION_0
        + _compact_string(value.instance_id)
        + _compact_string(value.rack_id)
        + _compact_string(value.client_id)
        + _compact_string(value.client_host)
        + _compact_array([_compact_string(t) for t in value.subscribed_topic_names])
        + _compact_string(value.subscribed_topic_regex)
        + _I32.pack(value.rebalance_timeout_ms)
        + _compact_string(value.server_assignor)
        + (_NO_TAGS if value.classic is None else _tagged(0, _classic_member_metadata(value.classic)))
    )


def _tagged(tag: int, data: bytes) -> bytes:
    return unsigned_varint(1) + unsigned_varint(tag) + unsigned_varint(len(data)) + data


def _classic_member_metadata(value: ClassicMemberMetadata) -> bytes:
    protocols = [
        _compact_string(name) + unsigned_varint(len(metadata) + 1) + metadata + _NO_TAGS for name, metadata in value.protocols
    ]
    return _I32.pack(value.session_timeout_ms) + _compact_array(protocols) + _NO_TAGS


def consumer_target_assignment_value(partitions: TopicIdPartitions) -> bytes:
    return _VERSION_0 + _topic_partitions(partitions) + _NO_TAGS


def consumer_current_assignment_value(value: ConsumerMemberAssignment) -> bytes:
    return (
        _VERSION_0
        + _I32.pack(value.member_epoch)
        + _I32.pack(value.previous_member_epoch)
        + bytes([value.state & 0xFF])
        + _topic_partitions(value.assigned)
        + _topic_partitions(value.pending_revocation)
        + _NO_TAGS
    )


class _FlexibleReader(_Reader):
    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 35:
                raise RecordFormatError("varint too long")

    def compact_string(self) -> str | None:
        length = self.uvarint()
        return None if length == 0 else self._take(length - 1).decode()

    def compact_count(self) -> int:
        count = self.uvarint() - 1
        if count > len(self.data) - self.offset:
            raise RecordFormatError(f"array of {count} elements in {len(self.data) - self.offset} bytes")
        return max(count, 0)

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self._take(self.uvarint())

    def uuid(self):
        import uuid as _uuid

        return _uuid.UUID(bytes=bytes(self._take(16)))

    def topic_partitions(self) -> TopicIdPartitions:
        result: TopicIdPartitions = {}
        for _ in range(self.compact_count()):
            topic_id = self.uuid()
            result[topic_id] = {self.i32() for _ in range(self.compact_count())}
            self.skip_tags()
        return result

    def version_0(self) -> None:
        version = self.i16()
        if version != 0:
            raise RecordFormatError(f"consumer group value version {version} is not supported")


def decode_consumer_key(data: bytes) -> ConsumerGroupKey | None:
    reader = _Reader(data)
    record_type = reader.i16()
    if record_type not in _CONSUMER_TYPES:
        return None
    group_id = reader.string() or ""
    member_id = reader.string() if record_type in _CONSUMER_TYPES_WITH_MEMBER else None
    return ConsumerGroupKey(record_type, group_id, member_id)


def decode_consumer_epoch_value(data: bytes) -> int:
    reader = _FlexibleReader(data)
    reader.version_0()
    return reader.i32()


def decode_consumer_member_metadata_value(data: bytes) -> ConsumerMemberMetadata:
    reader = _FlexibleReader(data)
    reader.version_0()
    instance_id, rack_id = reader.compact_string(), reader.compact_string()
    client_id, client_host = reader.compact_string() or "", reader.compact_string() or ""
    topics = [reader.compact_string() or "" for _ in range(reader.compact_count())]
    regex = reader.compact_string()
    rebalance_timeout_ms = reader.i32()
    server_assignor = reader.compact_string()
    classic = None
    for _ in range(reader.uvarint()):
        tag, size = reader.uvarint(), reader.uvarint()
        field_reader = _FlexibleReader(reader._take(size))
        if tag == 0:
            session_timeout_ms = field_reader.i32()
            protocols = []
            for _ in range(field_reader.compact_count()):
                name = field_reader.compact_string() or ""
                protocols.append((name, bytes(field_reader._take(field_reader.uvarint() - 1))))
                field_reader.skip_tags()
            classic = ClassicMemberMetadata(session_timeout_ms, tuple(protocols))
    return ConsumerMemberMetadata(instance_id, rack_id, client_id, client_host, topics, rebalance_timeout_ms,
                                  server_assignor, classic, regex)


def decode_consumer_target_assignment_value(data: bytes) -> TopicIdPartitions:
    reader = _FlexibleReader(data)
    reader.version_0()
    return reader.topic_partitions()


def decode_consumer_current_assignment_value(data: bytes) -> ConsumerMemberAssignment:
    reader = _FlexibleReader(data)
    reader.version_0()
    member_epoch, previous = reader.i32(), reader.i32()
    state = reader._take(1)[0]
    return ConsumerMemberAssignment(member_epoch, previous, state, reader.topic_partitions(), reader.topic_partitions())
