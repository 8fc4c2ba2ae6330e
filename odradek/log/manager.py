"""The log directories of one broker: which partition logs exist where, and their lifecycle.

Owns `meta.properties`, the checkpoint files, the clean-shutdown marker, creating, loading,
flushing and deleting PartitionLogs. Must not know about topics' metadata or sockets.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from odradek.clock import Clock
from odradek.log.checkpoint import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    OffsetCheckpointFile,
    write_atomically,
)
from odradek.log.log_config import LogConfig
from odradek.log.partition_log import PartitionLog, storage_error
from odradek.protocol.topic_partition import TopicPartition

logger = logging.getLogger(__name__)

META_PROPERTIES = "meta.properties"
CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
DELETE_SUFFIX = "-delete"
STRAY_SUFFIX = "-stray"


def read_properties(path: Path) -> dict[str, str] | None:
    """A Java-style properties file as a dict (comments skipped), or None if missing."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


class LogManager:
    """Every PartitionLog in the broker's log directories.

    Format: each log dir holds `meta.properties` (version=1, cluster.id, node.id,
    directory.id), `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`, the
    `.kafka_cleanshutdown` marker while stopped cleanly, and one `<topic>-<partition>`
    directory per log; `<topic>-<partition>.<uuid>-delete` directories await removal.
    Invariants: a TopicPartition has at most one log across all dirs; the clean-shutdown
    marker exists only while the broker is stopped after shutdown() completed.
    Concurrency: not thread-safe. Call from the event loop; flush_dirty,
    checkpoint_recovery_points and remove_deleted may be sent to a worker thread as a whole
    (PartitionLog.flush tolerates concurrent appends).
    """

    def __init__(self, log_dirs: list[Path], clock: Clock, *, cluster_id: str, node_id: int) -> None:
        if not log_dirs:
            raise ValueError("at least one log dir is needed")
        self.log_dirs = [Path(d) for d in log_dirs]
        self.clock = clock
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.logs: dict[TopicPartition, PartitionLog] = {}
        self._dir_of: dict[TopicPartition, Path] = {}
        self._pending_deletes: list[Path] = []

    # --- start-up -----------------------------------------------------------------------------

    def startup(self, config_for: Callable[[TopicPartition], LogConfig]) -> dict[TopicPartition, PartitionLog]:
        """Create or check every log dir and load every partition log found in them."""
        recovered_any = False
        for log_dir in self.log_dirs:
            log_dir.mkdir(parents=True, exist_ok=True)
            self._check_meta_properties(log_dir)
            recovery_points = OffsetCheckpointFile(log_dir / RECOVERY_POINT_CHECKPOINT).read()
            log_start_offsets = OffsetCheckpointFile(log_dir / LOG_START_OFFSET_CHECKPOINT).read()
            marker = log_dir / CLEAN_SHUTDOWN_MARKER
            clean = marker.exists()
            if clean:
                marker.unlink()
            for entry in sorted(log_dir.iterdir()):
                if not entry.is_dir():
                    continue
                if entry.name.endswith(DELETE_SUFFIX) or entry.name.endswith(STRAY_SUFFIX):
                    self._pending_deletes.append(entry)
                    continue
                try:
                    tp = TopicPartition.from_dir_name(entry.name)
                except ValueError:
                    continue
                recovered_any = recovered_any or not clean
                if tp in self.logs:
                    raise RuntimeError(f"{tp} has a log in both {self._dir_of[tp]} and {log_dir}")
                self.logs[tp] = PartitionLog.open(
                    entry,
                    config_for(tp),
                    self.clock,
                    recovery_point=recovery_points.get(tp, 0),
                    clean_shutdown=clean,
                    log_start_offset=log_start_offsets.get(tp, 0),
                )
                self._dir_of[tp] = log_dir
        logger.info(
            "Loaded %d partition logs from %d log dirs (%s)",
            len(self.logs), len(self.log_dirs),
            "recovery ran after an unclean shutdown" if recovered_any else "no recovery needed",
        )
        return dict(self.logs)

    def _check_meta_properties(self, log_dir: Path) -> None:
        path = log_dir / META_PROPERTIES
        values = read_properties(path)
        if values is None:
            directory_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            write_atomically(
                path,
                "#\n#Written by odradek\n"
                f"version=1\ncluster.id={self.cluster_id}\nnode.id={self.node_id}\ndirectory.id={directory_id}\n",
            )
            return
        stored_node = values.get("node.id", values.get("broker.id"))
        if stored_node is not None and int(stored_node) != self.node_id:
            raise RuntimeError(
                f"{path} belongs to node.id {stored_node}, but this broker is node.id {self.node_id}: "
                f"point log.dirs elsewhere or set node.id={stored_node}"
            )
        stored_cluster = values.get("cluster.id")
        if stored_cluster and stored_cluster != self.cluster_id:
            logger.warning(
                "%s has cluster.id %s but this broker was given %s", path, stored_cluster, self.cluster_id
            )

    @staticmethod
    def stored_cluster_id(log_dirs: list[Path]) -> str | None:
        """The cluster.id already recorded in any of the log dirs' meta.properties, if any."""
        for log_dir in log_dirs:
            values = read_properties(Path(log_dir) / META_PROPERTIES)
            if values and values.get("cluster.id"):
                return values["cluster.id"]
        return None

    # --- logs ---------------------------------------------------------------------------------

    def get_log(self, tp: TopicPartition) -> PartitionLog | None:
        return self.logs.get(tp)

    def create_log(self, tp: TopicPartition, config: LogConfig) -> PartitionLog:
        """The log of `tp`, created in the log dir holding the fewest partitions if absent."""
        existing = self.logs.get(tp)
        if existing is not None:
            return existing
        counts = {log_dir: 0 for log_dir in self.log_dirs}
        for log_dir in self._dir_of.values():
            counts[log_dir] = counts.get(log_dir, 0) + 1
        log_dir = min(self.log_dirs, key=lambda d: counts[d])
        partition_log = PartitionLog.open(log_dir / tp.dir_name, config, self.clock, clean_shutdown=True)
        self.logs[tp] = partition_log
        self._dir_of[tp] = log_dir
        return partition_log

    def delete_log(self, tp: TopicPartition) -> None:
        """Close the log and rename its dir `<topic>-<partition>.<uuid>-delete`; remove_deleted()
        removes it (call that in a worker thread)."""
        partition_log = self.logs.pop(tp, None)
        self._dir_of.pop(tp, None)
        if partition_log is None:
            return
        partition_log.close()
        target = partition_log.directory.with_name(f"{tp.dir_name}.{uuid.uuid4().hex}{DELETE_SUFFIX}")
        try:
            os.rename(partition_log.directory, target)
        except OSError as exc:
            raise storage_error(exc, "renaming for deletion", partition_log.directory) from exc
        self._pending_deletes.append(target)

    def remove_deleted(self) -> None:
        """Remove directories renamed by delete_log (and leftovers found at start-up)."""
        pending, self._pending_deletes = self._pending_deletes, []
        for path in pending:
            shutil.rmtree(path, ignore_errors=True)

    # --- durability ---------------------------------------------------------------------------

    def flush_dirty(self, now_ms: int) -> int:
        """Flush every log whose flush.ms has elapsed since its last flush; returns how many."""
        flushed = 0
        for partition_log in list(self.logs.values()):
            if now_ms - partition_log.last_flush_ms >= partition_log.config.flush_ms:
                partition_log.flush()
                flushed += 1
        return flushed

    def checkpoint_recovery_points(self) -> None:
        """Write both checkpoint files of every log dir."""
        for log_dir in self.log_dirs:
            logs = {tp: self.logs[tp] for tp, d in list(self._dir_of.items()) if d == log_dir and tp in self.logs}
            try:
                OffsetCheckpointFile(log_dir / RECOVERY_POINT_CHECKPOINT).write(
                    {tp: pl.recovery_point for tp, pl in logs.items()}
                )
                OffsetCheckpointFile(log_dir / LOG_START_OFFSET_CHECKPOINT).write(
                    {tp: pl.log_start_offset for tp, pl in logs.items()}
                )
            except OSError as exc:
                raise storage_error(exc, "writing checkpoints in", log_dir) from exc

    def shutdown(self) -> None:
        """Flush and close every log, write checkpoints, then mark each dir cleanly shut down."""
        for partition_log in self.logs.values():
            partition_log.flush()
        self.checkpoint_recovery_points()
        for partition_log in self.logs.values():
            partition_log.close()
        for log_dir in self.log_dirs:
            write_atomically(log_dir / CLEAN_SHUTDOWN_MARKER, "")
