"""The log directories of one broker: which partition logs exist where, and their lifecycle.

Owns `meta.properties`, the checkpoint files, the clean-shutdown marker, creating, loading,
flushing and deleting PartitionLogs. Must not know about topics' metadata or sockets.
"""

from __future__ import annotations

import base64
import errno
import logging
import os
import resource
import shutil
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable

from odradek.clock import Clock
from odradek.log.checkpoint import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    OffsetCheckpointFile,
    remove_temp_files,
    write_atomically,
)
from odradek.log.dir_lock import LogDirError
from odradek.log.file_handles import OPEN_FILES
from odradek.log.log_config import LogConfig
from odradek.log.partition_log import PartitionLog, storage_error
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition

logger = logging.getLogger(__name__)

META_PROPERTIES = "meta.properties"
CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
DELETE_SUFFIX = "-delete"
STRAY_SUFFIX = "-stray"
MIN_SEGMENT_FILES = 256
SEGMENT_FILES_CAP = 1 << 20


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


def _check_node_id(path: Path, values: dict[str, str], node_id: int) -> None:
    stored_node = values.get("node.id", values.get("broker.id"))
    if stored_node is not None and stored_node.strip() != str(node_id):
        raise LogDirError(
            f"{path} belongs to node.id {stored_node}, but this broker is node.id {node_id}: "
            f"point log.dirs elsewhere or set node.id={stored_node}"
        )


def _renamed(tp: TopicPartition, suffix: str) -> str:
    """`<topic>-<partition>.<uuid><suffix>` with the topic cut so the name fits in 255 bytes, as
    Kafka does: a topic name may be 249 characters long, and with the suffix it would not fit."""
    tail = f"-{tp.partition}.{uuid.uuid4().hex}{suffix}"
    return tp.topic[:255 - len(tail)] + tail


class LogManager:
    """Every PartitionLog in the broker's log directories.

    Format: each log dir holds `meta.properties` (version=1, cluster.id, node.id,
    directory.id), `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`, the
    `.kafka_cleanshutdown` marker while stopped cleanly, and one `<topic>-<partition>`
    directory per log; `<topic>-<partition>.<uuid>-delete` directories await removal;
    `<topic>-<partition>.<uuid>-stray` ones (logs of topics the metadata does not know) are kept
    and never deleted.
    Invariants: a TopicPartition has at most one log across all dirs; the clean-shutdown
    marker exists only while the broker is stopped after shutdown() completed. A dir in
    `offline_dirs` (an I/O error other than a full disk hit it, or it failed to load) stays
    offline until restart: its logs answer KAFKA_STORAGE_ERROR, new logs go elsewhere, no
    checkpoint or clean-shutdown marker is written there; the other dirs keep working.
    Concurrency: create_log, delete_log, startup and shutdown run on the event loop.
    flush_dirty, checkpoint_recovery_points, remove_deleted, run_retention and
    log_dir_stats may run in a worker thread while the loop appends (they iterate a copy of
    `logs`; PartitionLog makes flush and retention safe against concurrent appends). A dir
    may be marked offline from any thread.
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
        self._count_in: Counter[Path] = Counter()  # partitions per log dir, where create_log puts the next
        self._pending_deletes: list[Path] = []
        self.offline_dirs: set[Path] = set()
        self._offline_lock = threading.Lock()

    # --- start-up -----------------------------------------------------------------------------

    def startup(self, config_for: Callable[[TopicPartition], LogConfig]) -> dict[TopicPartition, PartitionLog]:
        """Create or check every log dir and load every partition log found in them."""
        self.bound_open_files(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        recovered_any = False
        for log_dir in self.log_dirs:
            try:
                recovered_any = self._load_dir(log_dir, config_for) or recovered_any
            except (OSError, KafkaError) as exc:
                if isinstance(exc, KafkaError) and exc.code != ErrorCode.kafka_storage_error:
                    raise
                self._mark_offline(log_dir, exc)
        if len(self.offline_dirs) == len(self.log_dirs):
            raise LogDirError(f"every log dir is offline: {', '.join(str(d) for d in self.log_dirs)}")
        logger.info(
            "Loaded %d partition logs from %d log dirs (%s)",
            len(self.logs), len(self.log_dirs),
            "recovery ran after an unclean shutdown" if recovered_any else "no recovery needed",
        )
        logger.info("At most %d segment files are kept open at once (half the open-file limit)", OPEN_FILES.limit)
        return dict(self.logs)

    @staticmethod
    def bound_open_files(limit: int) -> int:
        """Keep at most half the process's open-file limit (at least MIN_SEGMENT_FILES) for segment
        files, the rest for connections; a file beyond that is closed when least recently used and
        reopened when used again (file_handles.py). Returns the bound."""
        bound = SEGMENT_FILES_CAP if limit == resource.RLIM_INFINITY else min(max(limit // 2, MIN_SEGMENT_FILES), SEGMENT_FILES_CAP)
        OPEN_FILES.set_limit(bound)
        return bound

    def _load_dir(self, log_dir: Path, config_for: Callable[[TopicPartition], LogConfig]) -> bool:
        """Load one log dir's partition logs; whether recovery ran (unclean shutdown)."""
        recovered_any = False
        strays = 0
        log_dir.mkdir(parents=True, exist_ok=True)
        self._check_meta_properties(log_dir)
        remove_temp_files(log_dir)
        recovery_points = OffsetCheckpointFile(log_dir / RECOVERY_POINT_CHECKPOINT).read()
        log_start_offsets = OffsetCheckpointFile(log_dir / LOG_START_OFFSET_CHECKPOINT).read()
        marker = log_dir / CLEAN_SHUTDOWN_MARKER
        clean = marker.exists()
        if clean:
            marker.unlink()
        with os.scandir(log_dir) as listing:  # dir entries know their type: no stat per partition
            entries = sorted(item.name for item in listing if item.is_dir())
        for name in entries:
            entry = log_dir / name
            if name.endswith(DELETE_SUFFIX):
                self._pending_deletes.append(entry)
                continue
            if name.endswith(STRAY_SUFFIX):
                strays += 1
                continue
            try:
                tp = TopicPartition.from_dir_name(name)
            except ValueError:
                continue
            recovered_any = recovered_any or not clean
            if tp in self.logs:
                raise LogDirError(f"{tp} has a log in both {self._dir_of[tp]} and {log_dir}; remove one of them")
            partition_log = PartitionLog.open(
                entry,
                config_for(tp),
                self.clock,
                recovery_point=recovery_points.get(tp, 0),
                clean_shutdown=clean,
                log_start_offset=log_start_offsets.get(tp, 0),
            )
            self._register(tp, partition_log, log_dir)
        if strays:
            logger.warning(
                "%s holds %d stray partition dirs (*%s) from earlier starts; they are kept, not loaded: "
                "remove them by hand once they are not needed", log_dir, strays, STRAY_SUFFIX,
            )
        return recovered_any

    def _register(self, tp: TopicPartition, partition_log: PartitionLog, log_dir: Path) -> None:
        partition_log.on_storage_failure = lambda exc, log_dir=log_dir: self._mark_offline(log_dir, exc)
        self.logs[tp] = partition_log
        self._forget_dir(tp)
        self._dir_of[tp] = log_dir
        self._count_in[log_dir] += 1

    def _forget_dir(self, tp: TopicPartition) -> None:
        log_dir = self._dir_of.pop(tp, None)
        if log_dir is not None:
            self._count_in[log_dir] -= 1

    def _mark_offline(self, log_dir: Path, exc: BaseException) -> None:
        """Take `log_dir` offline: every log in it refuses appends and reads from now on."""
        with self._offline_lock:
            if log_dir in self.offline_dirs:
                return
            self.offline_dirs.add(log_dir)
        for tp, partition_log in list(self.logs.items()):
            if self._dir_of.get(tp) == log_dir:
                partition_log.offline = True
        logger.error(
            "log dir %s is offline after an I/O error (%s); its partitions answer KAFKA_STORAGE_ERROR "
            "until restart, the other %d dirs keep serving",
            log_dir, exc, len(self.log_dirs) - len(self.offline_dirs),
        )

    def mark_dir_offline(self, log_dir: Path, reason: str) -> None:
        """Take a log dir offline from outside (e.g. an operator's request or a health check)."""
        self._mark_offline(Path(log_dir), OSError(errno.EIO, reason))

    def log_dir_of(self, tp: TopicPartition) -> Path | None:
        return self._dir_of.get(tp)

    def _check_meta_properties(self, log_dir: Path) -> None:
        """Write meta.properties into a new dir; refuse a dir of another node or cluster."""
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
        _check_node_id(path, values, self.node_id)
        stored_cluster = values.get("cluster.id")
        if stored_cluster and stored_cluster != self.cluster_id:
            raise LogDirError(
                f"{path} has cluster id {stored_cluster} but this broker's cluster is {self.cluster_id}: "
                "that log dir belongs to another cluster"
            )

    @staticmethod
    def recorded_cluster_ids(log_dirs: list[Path], node_id: int) -> dict[Path, str]:
        """The cluster.id each log dir's meta.properties records (dirs without one left out),
        read before anything is written. LogDirError if a dir belongs to another node."""
        recorded = {}
        for log_dir in log_dirs:
            path = Path(log_dir) / META_PROPERTIES
            try:
                values = read_properties(path)
            except (OSError, UnicodeDecodeError) as exc:
                raise LogDirError(f"cannot read {path}: {exc}") from None
            if values is None:
                continue
            _check_node_id(path, values, node_id)
            if values.get("cluster.id"):
                recorded[Path(log_dir)] = values["cluster.id"]
        return recorded

    # --- logs ---------------------------------------------------------------------------------

    def get_log(self, tp: TopicPartition) -> PartitionLog | None:
        return self.logs.get(tp)

    def create_log(self, tp: TopicPartition, config: LogConfig) -> PartitionLog:
        """The log of `tp`, created in the log dir holding the fewest partitions if absent."""
        existing = self.logs.get(tp)
        if existing is not None:
            return existing
        [(_, log_dir)] = self.place([tp])
        return self.adopt(tp, self.open_new_log(tp, log_dir, config), log_dir)

    def place(self, tps: list[TopicPartition]) -> list[tuple[TopicPartition, Path]]:
        """The log dir for each new partition: the online dir holding the fewest, counting these."""
        online = [d for d in self.log_dirs if d not in self.offline_dirs]
        if not online:
            what = str(tps[0]) if len(tps) == 1 else f"{len(tps)} partitions"
            raise KafkaError(ErrorCode.kafka_storage_error, f"cannot create {what}: every log dir is offline")
        counts = Counter({log_dir: self._count_in[log_dir] for log_dir in online})
        placed = []
        for tp in tps:
            log_dir = min(online, key=counts.__getitem__)
            counts[log_dir] += 1
            placed.append((tp, log_dir))
        return placed

    def open_new_log(self, tp: TopicPartition, log_dir: Path, config: LogConfig) -> PartitionLog:
        """Create (or open) the files of `tp`'s log in `log_dir`; safe in a worker thread, as it
        changes nothing the manager holds until adopt()."""
        try:
            return PartitionLog.open(log_dir / tp.dir_name, config, self.clock, clean_shutdown=True)
        except KafkaError as exc:
            if exc.code == ErrorCode.kafka_storage_error:
                self._mark_offline(log_dir, exc)
            raise

    def adopt(self, tp: TopicPartition, partition_log: PartitionLog, log_dir: Path) -> PartitionLog:
        """Make a log open_new_log created one of the manager's (on the event loop)."""
        existing = self.logs.get(tp)
        if existing is not None:
            partition_log.close()
            return existing
        self._register(tp, partition_log, log_dir)
        return partition_log

    def delete_log(self, tp: TopicPartition) -> None:
        """Close the log and rename its dir `<topic>-<partition>.<uuid>-delete`; remove_deleted()
        removes it (call that in a worker thread)."""
        partition_log = self.logs.pop(tp, None)
        self._forget_dir(tp)
        if partition_log is None:
            return
        partition_log.close()
        target = partition_log.directory.with_name(_renamed(tp, DELETE_SUFFIX))
        try:
            os.rename(partition_log.directory, target)
        except OSError as exc:
            if partition_log.offline:
                return  # its dir is gone or broken; nothing more to do until restart
            raise storage_error(exc, "renaming for deletion", partition_log.directory) from exc
        self._pending_deletes.append(target)

    def mark_stray(self, tp: TopicPartition) -> Path | None:
        """Close a log the metadata does not know and rename its dir `<topic>-<partition>.<uuid>-stray`
        (Kafka's name): kept on disk, never loaded or deleted. Returns the new path."""
        partition_log = self.logs.pop(tp, None)
        self._forget_dir(tp)
        if partition_log is None:
            return None
        partition_log.close()
        target = partition_log.directory.with_name(_renamed(tp, STRAY_SUFFIX))
        try:
            os.rename(partition_log.directory, target)
        except OSError as exc:
            raise storage_error(exc, "renaming as stray", partition_log.directory) from exc
        return target

    def remove_deleted(self) -> None:
        """Remove directories renamed by delete_log (and leftovers found at start-up)."""
        pending, self._pending_deletes = self._pending_deletes, []
        for path in pending:
            shutil.rmtree(path, ignore_errors=True)

    # --- retention and log dirs -----------------------------------------------------------------

    def run_retention(self, now_ms: int, high_watermark_of: Callable[[TopicPartition], int | None] | None = None) -> int:
        """One retention pass over every online log (call every log.retention.check.interval.ms,
        in a worker thread): roll active segments older than segment.ms, then drop segments
        past retention.ms / retention.bytes / the log start offset, and remove `*.deleted`
        files whose file.delete.delay.ms has passed. `high_watermark_of(tp)`, if given, bounds
        what may be deleted (Kafka never deletes above the high watermark). Returns the number
        of segments dropped. An error in one log is logged and the pass goes on."""
        dropped = 0
        for tp, partition_log in list(self.logs.items()):
            if partition_log.offline or partition_log.closed:
                continue
            try:
                partition_log.maybe_roll_by_time(now_ms)
                high_watermark = high_watermark_of(tp) if high_watermark_of is not None else None
                dropped += partition_log.delete_retention_segments(now_ms, high_watermark)
            except KafkaError as exc:
                logger.error("retention of %s failed: %s", tp, exc)
            except Exception:  # noqa: BLE001 - one bad log must not stop retention for all
                logger.exception("retention of %s failed", tp)
        return dropped

    def log_dir_stats(self) -> list[tuple[str, ErrorCode | None, list[tuple[TopicPartition, int, int]]]]:
        """DescribeLogDirs: per log dir (absolute path, KAFKA_STORAGE_ERROR if offline else None,
        [(partition, size in bytes, offset lag = 0)]). An offline dir lists no partitions."""
        stats = []
        dir_of = dict(self._dir_of)
        for log_dir in self.log_dirs:
            if log_dir in self.offline_dirs:
                stats.append((str(log_dir.absolute()), ErrorCode.kafka_storage_error, []))
                continue
            partitions = [
                (tp, partition_log.size_bytes, 0)
                for tp, partition_log in sorted(list(self.logs.items()), key=lambda item: item[0])
                if dir_of.get(tp) == log_dir
            ]
            stats.append((str(log_dir.absolute()), None, partitions))
        return stats

    # --- durability ---------------------------------------------------------------------------

    def flush_dirty(self, now_ms: int) -> int:
        """Flush every log whose flush.ms has elapsed since its last flush; returns how many."""
        flushed = 0
        for partition_log in list(self.logs.values()):
            if partition_log.offline:
                continue
            if now_ms - partition_log.last_flush_ms >= partition_log.config.flush_ms:
                partition_log.flush()
                flushed += 1
        return flushed

    def checkpoint_recovery_points(self) -> None:
        """Write both checkpoint files (recovery points, log start offsets) of every online log
        dir. A dir whose write fails goes offline (other than for a full disk, which raises)."""
        logs_by_dir: dict[Path, dict[TopicPartition, PartitionLog]] = {}
        for tp, log_dir in list(self._dir_of.items()):
            partition_log = self.logs.get(tp)
            if partition_log is not None:
                logs_by_dir.setdefault(log_dir, {})[tp] = partition_log
        for log_dir in self.log_dirs:
            if log_dir in self.offline_dirs:
                continue
            logs = logs_by_dir.get(log_dir, {})
            try:
                OffsetCheckpointFile(log_dir / RECOVERY_POINT_CHECKPOINT).write(
                    {tp: pl.recovery_point for tp, pl in logs.items()}
                )
                OffsetCheckpointFile(log_dir / LOG_START_OFFSET_CHECKPOINT).write(
                    {tp: pl.log_start_offset for tp, pl in logs.items()}
                )
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    self._mark_offline(log_dir, exc)
                    continue
                raise storage_error(exc, "writing checkpoints in", log_dir) from exc

    def close(self) -> None:
        """Close every log without checkpoints or clean-shutdown markers (a start that failed
        half-way: the next start must recover what this one did not)."""
        for partition_log in list(self.logs.values()):
            partition_log.close()

    def shutdown(self) -> None:
        """Flush and close every log, write checkpoints, then mark each dir cleanly shut down.
        Offline dirs get no marker: their logs are recovered at the next start."""
        for partition_log in self.logs.values():
            if partition_log.offline:
                continue
            try:
                partition_log.flush()
            except KafkaError as exc:
                logger.error("flushing %s at shutdown failed: %s", partition_log.topic_partition, exc)
        self.checkpoint_recovery_points()
        for partition_log in self.logs.values():
            partition_log.close()
        for log_dir in self.log_dirs:
            if log_dir not in self.offline_dirs:
                try:
                    write_atomically(log_dir / CLEAN_SHUTDOWN_MARKER, "")
                except OSError as exc:
                    logger.error("could not mark %s cleanly shut down: %s", log_dir, exc)
