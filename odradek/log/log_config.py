"""The topic-level settings the log layer obeys, under Kafka's names and defaults.

Owns only the values; parsing broker-wide config and validation live in odradek.config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

_LONG_MAX = 9223372036854775807

_TOPIC_NAMES = {
    "segment.bytes": ("segment_bytes", int),
    "segment.ms": ("segment_ms", int),
    "index.interval.bytes": ("index_interval_bytes", int),
    "segment.index.bytes": ("segment_index_bytes", int),
    "flush.messages": ("flush_messages", int),
    "flush.ms": ("flush_ms", int),
    "message.timestamp.type": ("message_timestamp_type", str),
}


@dataclass(frozen=True)
class LogConfig:
    """Per-partition log settings; immutable, swapped whole by PartitionLog.set_config."""

    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    index_interval_bytes: int = 4096
    segment_index_bytes: int = 10485760
    flush_messages: int = _LONG_MAX
    flush_ms: int = _LONG_MAX
    message_timestamp_type: str = "CreateTime"

    @classmethod
    def from_topic_config(cls, values: Mapping[str, object]) -> "LogConfig":
        """Build from Kafka topic-config names ("segment.bytes", ...); other names are ignored."""
        fields = {}
        for name, value in values.items():
            known = _TOPIC_NAMES.get(name)
            if known is None or value is None:
                continue
            field, kind = known
            fields[field] = kind(value)
        return cls(**fields)
