"""Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`).

Owns their text format and atomic replacement; knows nothing about what the offsets mean.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Mapping

from odradek.protocol.topic_partition import TopicPartition

logger = logging.getLogger(__name__)

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
_VERSION = 0


TEMP_SUFFIX = ".tmp"  # a file being written before its rename; removed at start-up


def temp_path(path: Path) -> Path:
    """Where the calling thread writes `path` before renaming it there. The temp file is the
    thread's own: two worker threads (retention, the cleaner, a flush) may write one file at once,
    and with a shared temp name one renamed the other's file away, whose rename then failed and
    took the log dir offline."""
    return path.with_name(f"{path.name}.{threading.get_ident()}{TEMP_SUFFIX}")


def remove_temp_files(directory: Path) -> None:
    """At start-up: what a crash left between a write and its rename (the file it was replacing
    is still whole)."""
    for name in os.listdir(directory):
        if name.endswith(TEMP_SUFFIX):
            logger.info("removing leftover %s", directory / name)
            (directory / name).unlink(missing_ok=True)


def write_atomically(path: Path, content: str | bytes) -> None:
    """Write `content` to a temp file, fsync it, rename it over `path`, fsync the directory."""
    temp = temp_path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    directory_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


class OffsetCheckpointFile:
    """One checkpoint file: "0\\n<count>\\n<topic> <partition> <offset>\\n..." (Kafka's format).

    Invariants: the file on disk is always a complete version (replaced atomically).
    Not thread-safe: one writer at a time (the LogManager's checkpoint task).
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, offsets: Mapping[TopicPartition, int]) -> None:
        lines = [str(_VERSION), str(len(offsets))]
        lines += [f"{tp.topic} {tp.partition} {offset}" for tp, offset in offsets.items()]
        write_atomically(self.path, "\n".join(lines) + "\n")

    def read(self) -> dict[TopicPartition, int]:
        """The offsets in the file; {} if it is missing. A malformed file raises ValueError."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        lines = text.splitlines()
        if len(lines) < 2 or lines[0].strip() != str(_VERSION):
            raise ValueError(f"{self.path}: expected version {_VERSION} and a count, found {lines[:2]!r}")
        count = int(lines[1])
        entries = [line for line in lines[2:] if line.strip()]
        if len(entries) != count:
            raise ValueError(f"{self.path}: header says {count} entries, found {len(entries)}")
        offsets: dict[TopicPartition, int] = {}
        for line in entries:
            topic, partition, offset = line.split()
            offsets[TopicPartition(topic, int(partition))] = int(offset)
        return offsets
