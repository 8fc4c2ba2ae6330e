"""The consumer embedded protocol: ConsumerProtocolSubscription and ConsumerProtocolAssignment.

These are the opaque `metadata` (JoinGroup) and `assignment` (SyncGroup, DescribeGroups) bytes of
groups with protocol type "consumer". The broker never looks inside; clients of any language do,
so the layout is Kafka's (big-endian, non-flexible):

  Subscription v0: version int16, topics [string], user_data nullable bytes
               v1+ add owned_partitions [topic string, partitions [int32]] (cooperative clients
               report what they still own), v2 generation int32, v3 rack nullable string.
  Assignment   v0: version int16, assigned_partitions [topic string, partitions [int32]], user_data nullable bytes

Also the range assignor (Kafka's RangeAssignor): per topic, partitions split into contiguous
ranges over the subscribed members sorted by member id, the first `partitions % members` members
getting one extra. No I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from odradek.protocol.topic_partition import TopicPartition

__all__ = [
    "ConsumerProtocolError",
    "Subscription",
    "decode_assignment",
    "decode_subscription",
    "encode_assignment",
    "encode_subscription",
    "range_assign",
]

PROTOCOL_TYPE = "consumer"
RANGE = "range"
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


class ConsumerProtocolError(ValueError):
    """Subscription or assignment bytes that do not follow the consumer protocol."""


class Subscription(NamedTuple):
    version: int
    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned_partitions: tuple[TopicPartition, ...] = ()


def _string(value: str) -> bytes:
    encoded = value.encode("utf-8")
    return _INT16.pack(len(encoded)) + encoded


def _nullable_bytes(value: bytes | None) -> bytes:
    if value is None:
        return _INT32.pack(-1)
    return _INT32.pack(len(value)) + value


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = bytes(data)
        self.position = 0
        self.what = what

    def _take(self, size: int) -> bytes:
        end = self.position + size
        if size < 0 or end > len(self.data):
            raise ConsumerProtocolError(
                f"{self.what}: needed {size} bytes at byte {self.position}, only {len(self.data) - self.position} left"
            )
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def int16(self) -> int:
        return _INT16.unpack(self._take(2))[0]

    def int32(self) -> int:
        return _INT32.unpack(self._take(4))[0]

    def string(self) -> str:
        length = self.int16()
        if length < 0:
            raise ConsumerProtocolError(f"{self.what}: null string at byte {self.position - 2}")
        return self._take(length).decode("utf-8", "replace")

    def nullable_bytes(self) -> bytes | None:
        length = self.int32()
        return None if length < 0 else self._take(length)

    def array_length(self) -> int:
        length = self.int32()
        if length > len(self.data):
            raise ConsumerProtocolError(f"{self.what}: array of {length} entries in {len(self.data)} bytes")
        return max(length, 0)

    @property
    def at_end(self) -> bool:
        return self.position >= len(self.data)


def encode_subscription(topics: Iterable[str], user_data: bytes | None = None) -> bytes:
    """Subscription v0."""
    topics = list(topics)
    out = bytearray(_INT16.pack(0))
    out += _INT32.pack(len(topics))
    for topic in topics:
        out += _string(topic)
    out += _nullable_bytes(user_data)
    return bytes(out)


def decode_subscription(data: bytes) -> Subscription:
    """Any version: the topics, user data and (v1+) owned partitions; later fields are skipped."""
    reader = _Reader(data, "consumer subscription")
    version = reader.int16()
    topics = tuple(reader.string() for _ in range(reader.array_length()))
    user_data = None if reader.at_end else reader.nullable_bytes()
    owned: list[TopicPartition] = []
    if version >= 1 and not reader.at_end:
        for _ in range(reader.array_length()):
            topic = reader.string()
            owned.extend(TopicPartition(topic, reader.int32()) for _ in range(reader.array_length()))
    return Subscription(version, topics, user_data, tuple(owned))


def encode_assignment(partitions: Iterable[TopicPartition], user_data: bytes | None = None) -> bytes:
    """Assignment v0, topics in name order and partitions ascending."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    out = bytearray(_INT16.pack(0))
    out += _INT32.pack(len(by_topic))
    for topic in sorted(by_topic):
        out += _string(topic)
        numbers = sorted(by_topic[topic])
        out += _INT32.pack(len(numbers))
        for number in numbers:
            out += _INT32.pack(number)
    out += _nullable_bytes(user_data)
    return bytes(out)


def decode_assignment(data: bytes | None) -> list[TopicPartition]:
    """The partitions of an assignment of any version; empty bytes are an empty assignment."""
    if not data:
        return []
    reader = _Reader(data, "consumer assignment")
    reader.int16()
    partitions = []
    for _ in range(reader.array_length()):
        topic = reader.string()
        for _ in range(reader.array_length()):
            partitions.append(TopicPartition(topic, reader.int32()))
    return partitions


def range_assign(subscriptions: Mapping[str, Iterable[str]], partition_counts: Mapping[str, int]) -> dict[str, list[TopicPartition]]:
    """Kafka's RangeAssignor: member id -> partitions. Topics without a count are skipped."""
    assignment: dict[str, list[TopicPartition]] = {member: [] for member in subscriptions}
    members_by_topic: dict[str, list[str]] = {}
    for member, topics in subscriptions.items():
        for topic in set(topics):
            members_by_topic.setdefault(topic, []).append(member)
    for topic, members in members_by_topic.items():
        count = partition_counts.get(topic)
        if not count:
            continue
        members.sort()
        per_member, extra = divmod(count, len(members))
        start = 0
        for index, member in enumerate(members):
            length = per_member + (1 if index < extra else 0)
            assignment[member].extend(TopicPartition(topic, p) for p in range(start, start + length))
            start += length
    return assignment
