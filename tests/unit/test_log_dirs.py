"""Several log dirs: placement, DescribeLogDirs stats, a failed dir going offline while the
others serve, run_retention over all logs, and the log-start-offset checkpoint."""

import errno

import pytest

from odradek.clock import FakeClock
from odradek.log.checkpoint import OffsetCheckpointFile
from odradek.log.dir_lock import LogDirError
from odradek.log.log_config import LogConfig
from odradek.log.manager import CLEAN_SHUTDOWN_MARKER, LogManager
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import encode_batch, validate_batches
from odradek.protocol.topic_partition import TopicPartition


def append(log, clock, count=1, timestamp=None):
    timestamp = clock.now_ms() if timestamp is None else timestamp
    buffer = bytearray(encode_batch([(timestamp, b"k", b"v" * 50)] * count))
    return log.append(buffer, validate_batches(buffer), 0)


@pytest.fixture
def clock():
    return FakeClock()


def started(dirs, clock, config=LogConfig()):
    manager = LogManager(dirs, clock, cluster_id="abc", node_id=1)
    manager.startup(lambda tp: config)
    return manager


def fail_writes(log, error_number):
    def failing_append(buffer, headers):
        raise OSError(error_number, "simulated", str(log.active_segment.log_path))

    log.active_segment.append = failing_append


def test_log_dir_stats_report_sizes_per_dir(tmp_path, clock):
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    manager = started(dirs, clock)
    logs = {p: manager.create_log(TopicPartition("t", p), LogConfig()) for p in range(3)}
    append(logs[0], clock, 2)
    stats = manager.log_dir_stats()
    assert [entry[0] for entry in stats] == [str(d.absolute()) for d in dirs]
    assert all(entry[1] is None for entry in stats)
    sizes = {tp: size for _, _, partitions in stats for tp, size, lag in partitions}
    assert sizes == {TopicPartition("t", p): logs[p].size_bytes for p in range(3)}
    assert sizes[TopicPartition("t", 0)] > 0
    assert all(lag == 0 for _, _, partitions in stats for _, _, lag in partitions)
    assert sorted(len(partitions) for _, _, partitions in stats) == [1, 2]


def test_failed_dir_goes_offline_and_other_dir_keeps_serving(tmp_path, clock):
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    manager = started(dirs, clock)
    first = manager.create_log(TopicPartition("t", 0), LogConfig())
    second = manager.create_log(TopicPartition("t", 1), LogConfig())
    neighbour = manager.create_log(TopicPartition("u", 0), LogConfig())
    assert manager.log_dir_of(TopicPartition("t", 0)) != manager.log_dir_of(TopicPartition("t", 1))
    failing_dir = manager.log_dir_of(TopicPartition("t", 0))
    assert manager.log_dir_of(TopicPartition("u", 0)) == failing_dir
    append(first, clock)
    fail_writes(first, errno.EIO)
    with pytest.raises(KafkaError) as error:
        append(first, clock)
    assert error.value.code == ErrorCode.kafka_storage_error
    assert manager.offline_dirs == {failing_dir}
    # Every partition of that dir is offline, for reads too.
    for log in (first, neighbour):
        with pytest.raises(KafkaError) as error:
            log.read(0, 1000, 1)
        assert error.value.code == ErrorCode.kafka_storage_error
    with pytest.raises(KafkaError):
        append(neighbour, clock)
    # The other dir keeps working, and new partitions go there.
    append(second, clock)
    assert second.read(0, 1000, 1)
    newcomer = manager.create_log(TopicPartition("v", 0), LogConfig())
    assert manager.log_dir_of(TopicPartition("v", 0)) != failing_dir
    append(newcomer, clock)
    stats = {entry[0]: entry for entry in manager.log_dir_stats()}
    assert stats[str(failing_dir.absolute())][1:] == (ErrorCode.kafka_storage_error, [])
    assert stats[str((set(dirs) - {failing_dir}).pop().absolute())][1] is None
    # Shutdown skips the offline dir: no clean marker there, so its logs are recovered next time.
    manager.shutdown()
    assert not (failing_dir / CLEAN_SHUTDOWN_MARKER).exists()
    assert ((set(dirs) - {failing_dir}).pop() / CLEAN_SHUTDOWN_MARKER).exists()
    again = started(dirs, clock)
    assert not again.offline_dirs
    assert again.get_log(TopicPartition("t", 0)).log_end_offset == 1


def test_full_disk_does_not_take_the_dir_offline(tmp_path, clock):
    manager = started([tmp_path / "d1"], clock)
    log = manager.create_log(TopicPartition("t", 0), LogConfig())
    original = log.active_segment.append
    fail_writes(log, errno.ENOSPC)
    with pytest.raises(KafkaError) as error:
        append(log, clock)
    assert error.value.code == ErrorCode.kafka_storage_error
    assert not manager.offline_dirs
    log.active_segment.append = original
    assert append(log, clock).base_offset == 0


def test_a_dir_that_cannot_load_is_offline_at_startup(tmp_path, clock):
    good, bad = tmp_path / "good", tmp_path / "bad"
    bad.write_text("not a directory")
    manager = started([good, bad], clock)
    assert manager.offline_dirs == {bad}
    manager.create_log(TopicPartition("t", 0), LogConfig())
    assert manager.log_dir_of(TopicPartition("t", 0)) == good


def test_every_dir_offline_refuses_to_start(tmp_path, clock):
    bad = tmp_path / "bad"
    bad.write_text("x")
    with pytest.raises(LogDirError, match="every log dir is offline"):
        started([bad], clock)


def test_run_retention_covers_every_log_and_rolls_idle_segments(tmp_path, clock):
    config = LogConfig(segment_ms=1000, retention_ms=5000, file_delete_delay_ms=0)
    manager = started([tmp_path / "d1", tmp_path / "d2"], clock, config)
    logs = [manager.create_log(TopicPartition("t", p), config) for p in range(2)]
    for log in logs:
        append(log, clock, 3)
    compacted = manager.create_log(TopicPartition("c", 0), LogConfig(segment_ms=1000, retention_ms=5000, cleanup_policy=("compact",)))
    append(compacted, clock, 3)
    clock.advance(2000)
    assert manager.run_retention(clock.now_ms()) == 0  # rolled, not old enough yet
    assert all(len(log.segments) == 2 for log in logs + [compacted])
    clock.advance(5000)
    assert manager.run_retention(clock.now_ms()) == 2
    assert [log.log_start_offset for log in logs] == [3, 3]
    assert compacted.log_start_offset == 0
    assert len(compacted.segments) == 2


def test_log_start_offset_survives_restart_via_checkpoint(tmp_path, clock):
    dirs = [tmp_path / "d1"]
    manager = started(dirs, clock)
    log = manager.create_log(TopicPartition("t", 0), LogConfig())
    append(log, clock, 10)
    log.advance_log_start_offset(7)
    manager.checkpoint_recovery_points()
    assert OffsetCheckpointFile(dirs[0] / "log-start-offset-checkpoint").read() == {TopicPartition("t", 0): 7}
    manager.shutdown()
    again = started(dirs, clock)
    assert again.get_log(TopicPartition("t", 0)).log_start_offset == 7
