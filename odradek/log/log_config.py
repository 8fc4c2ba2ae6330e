"""The topic-level settings the log layer obeys, under Kafka's names and defaults.

Owns only the values; parsing broker-wide config and validation live in odradek.config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

_LONG_MAX = 9223372036854775807


def _policy(value) -> tuple[str, ...]:
    """cleanup.policy as a tuple: "compact,delete", ["compact", "delete"] -> ("compact", "delete")."""
    if isinstance(value, str):
        parts = value.split(",")
    else:
        parts = list(value)
    return tuple(part.strip().lower() for part in parts if part.strip())


_TOPIC_NAMES = {
    "segment.bytes": ("segment_bytes", int),
    "segment.ms": ("segment_ms", int),
    "index.interval.bytes": ("index_interval_bytes", int),
    "segment.index.bytes": ("segment_index_bytes", int),
    "flush.messages": ("flush_messages", int),
    "flush.ms": ("flush_ms", int),
    "message.timestamp.type": ("message_timestamp_type", str),
    "retention.ms": ("retention_ms", int),
    "retention.bytes": ("retention_bytes", int),
    "cleanup.policy": ("cleanup_policy", _policy),
    "delete.retention.ms": ("delete_retention_ms", int),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", float),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", int),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", int),
    "file.delete.delay.ms": ("file_delete_delay_ms", int),
}


@dataclass(frozen=True)
class LogConfig:
    """Per-partition log settings; immutable, swapped whole by PartitionLog.set_config.

    retention_ms / retention_bytes of -1 mean unlimited (Kafka's meaning).
    """

    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    index_interval_bytes: int = 4096
    segment_index_bytes: int = 10485760
    flush_messages: int = _LONG_MAX
    flush_ms: int = _LONG_MAX
    message_timestamp_type: str = "CreateTime"
    retention_ms: int = 604800000
    retention_bytes: int = -1
    cleanup_policy: tuple[str, ...] = ("delete",)
    delete_retention_ms: int = 86400000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = _LONG_MAX
    file_delete_delay_ms: int = 60000

    @property
    def deletes(self) -> bool:
        """Whether retention.ms / retention.bytes apply ("delete" in cleanup.policy)."""
        return "delete" in self.cleanup_policy

    @property
    def compacts(self) -> bool:
        """Whether the cleaner compacts this log ("compact" in cleanup.policy)."""
        return "compact" in self.cleanup_policy

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
