"""LogManager and checkpoint files: start-up, shutdown, clean marker, recovery points, placement."""

import os

import pytest

from odradek.clock import FakeClock
from odradek.log.checkpoint import OffsetCheckpointFile
from odradek.log.dir_lock import LogDirError
from odradek.log.log_config import LogConfig
from odradek.log.manager import CLEAN_SHUTDOWN_MARKER, LogManager, read_properties
from odradek.protocol.records import encode_batch, validate_batches
from odradek.protocol.topic_partition import TopicPartition


def append(log, clock, count=1):
    buffer = bytearray(encode_batch([(clock.now_ms(), b"k", b"v" * 20)] * count))
    return log.append(buffer, validate_batches(buffer), 0)


def test_checkpoint_round_trip_and_missing_file(tmp_path):
    checkpoint = OffsetCheckpointFile(tmp_path / "recovery-point-offset-checkpoint")
    assert checkpoint.read() == {}
    offsets = {TopicPartition("a", 0): 5, TopicPartition("my.topic-x", 12): 1 << 40}
    checkpoint.write(offsets)
    assert checkpoint.read() == offsets
    assert checkpoint.path.read_text().startswith("0\n2\n")
    assert "a 0 5\n" in checkpoint.path.read_text()
    checkpoint.write({})
    assert checkpoint.read() == {}


def test_checkpoint_rejects_wrong_count(tmp_path):
    path = tmp_path / "cp"
    path.write_text("0\n2\na 0 5\n")
    with pytest.raises(ValueError):
        OffsetCheckpointFile(path).read()


def make_manager(dirs, clock, node_id=1):
    return LogManager(dirs, clock, cluster_id="abc", node_id=node_id)


def test_startup_writes_meta_properties_and_shutdown_marks_clean(tmp_path):
    clock = FakeClock()
    dirs = [tmp_path / "d1", tmp_path / "d2"]
    manager = make_manager(dirs, clock)
    assert manager.startup(lambda tp: LogConfig()) == {}
    meta = read_properties(dirs[0] / "meta.properties")
    assert meta["version"] == "1" and meta["cluster.id"] == "abc" and meta["node.id"] == "1"
    assert len(meta["directory.id"]) == 22
    log = manager.create_log(TopicPartition("t", 0), LogConfig())
    append(log, clock, 3)
    manager.shutdown()
    assert all((d / CLEAN_SHUTDOWN_MARKER).exists() for d in dirs)
    assert any(OffsetCheckpointFile(d / "recovery-point-offset-checkpoint").read() for d in dirs)

    again = make_manager(dirs, clock)
    logs = again.startup(lambda tp: LogConfig())
    assert not any((d / CLEAN_SHUTDOWN_MARKER).exists() for d in dirs)
    assert logs[TopicPartition("t", 0)].log_end_offset == 3
    assert logs[TopicPartition("t", 0)].recovery_point == 3


def test_node_id_mismatch_is_refused(tmp_path):
    clock = FakeClock()
    make_manager([tmp_path], clock, node_id=1).startup(lambda tp: LogConfig())
    with pytest.raises(LogDirError, match="node.id"):
        make_manager([tmp_path], clock, node_id=2).startup(lambda tp: LogConfig())


def test_unclean_start_recovers_from_recovery_point(tmp_path):
    clock = FakeClock()
    manager = make_manager([tmp_path], clock)
    manager.startup(lambda tp: LogConfig())
    tp = TopicPartition("t", 3)
    log = manager.create_log(tp, LogConfig(segment_bytes=400))
    for _ in range(10):
        append(log, clock)
    log.flush()
    manager.checkpoint_recovery_points()
    segment_path = log.active_segment.log_path
    for partition_log in manager.logs.values():
        partition_log.close()
    with open(segment_path, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x01")  # torn tail, no clean marker
    manager = make_manager([tmp_path], clock)
    logs = manager.startup(lambda tp: LogConfig(segment_bytes=400))
    assert logs[tp].log_end_offset == 10
    assert logs[tp].active_segment.size == segment_path.stat().st_size


def test_create_log_picks_dir_with_fewest_partitions_and_is_idempotent(tmp_path):
    clock = FakeClock()
    dirs = [tmp_path / "d1", tmp_path / "d2", tmp_path / "d3"]
    manager = make_manager(dirs, clock)
    manager.startup(lambda tp: LogConfig())
    created = [manager.create_log(TopicPartition("t", p), LogConfig()) for p in range(6)]
    assert sorted(log.directory.parent.name for log in created) == ["d1", "d1", "d2", "d2", "d3", "d3"]
    assert manager.create_log(TopicPartition("t", 0), LogConfig()) is created[0]
    assert manager.get_log(TopicPartition("t", 9)) is None


def test_delete_log_renames_then_removes(tmp_path):
    clock = FakeClock()
    manager = make_manager([tmp_path], clock)
    manager.startup(lambda tp: LogConfig())
    tp = TopicPartition("gone", 0)
    append(manager.create_log(tp, LogConfig()), clock)
    manager.delete_log(tp)
    assert manager.get_log(tp) is None
    leftovers = [p.name for p in tmp_path.iterdir() if p.is_dir()]
    assert len(leftovers) == 1 and leftovers[0].startswith("gone-0.") and leftovers[0].endswith("-delete")
    manager.remove_deleted()
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_a_topic_with_the_longest_legal_name_can_be_deleted_and_set_aside(tmp_path):
    """249 characters (Kafka's limit) plus "-<partition>.<uuid>-delete" would pass the 255 bytes a
    file name may have: the topic part is cut, as Kafka cuts it."""
    clock = FakeClock()
    manager = make_manager([tmp_path], clock)
    manager.startup(lambda tp: LogConfig())
    long_name = "x" * 249
    manager.create_log(TopicPartition(long_name, 12), LogConfig())
    manager.create_log(TopicPartition(long_name, 13), LogConfig())
    manager.delete_log(TopicPartition(long_name, 12))
    assert manager.mark_stray(TopicPartition(long_name, 13)) is not None
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert [len(name) for name in names] == [255, 255] and names[0].endswith("-delete") and "-12." in names[0]
    manager.remove_deleted()
    assert [p.name.endswith("-stray") for p in tmp_path.iterdir() if p.is_dir()] == [True]


def test_startup_skips_delete_and_stray_dirs_and_files(tmp_path):
    clock = FakeClock()
    (tmp_path / "t-0.0123abcd-delete").mkdir()
    (tmp_path / "t-1.0123abcd-stray").mkdir()
    (tmp_path / "notes-7").write_text("a file")
    (tmp_path / "t-2").mkdir()
    manager = make_manager([tmp_path], clock)
    assert list(manager.startup(lambda tp: LogConfig())) == [TopicPartition("t", 2)]


def test_flush_dirty_flushes_after_flush_ms(tmp_path):
    clock = FakeClock()
    manager = make_manager([tmp_path], clock)
    manager.startup(lambda tp: LogConfig())
    log = manager.create_log(TopicPartition("t", 0), LogConfig(flush_ms=1000))
    append(log, clock, 2)
    assert manager.flush_dirty(clock.now_ms()) == 0
    clock.advance(1000)
    assert manager.flush_dirty(clock.now_ms()) == 1
    assert log.recovery_point == 2


def test_dir_lock_refuses_a_second_holder_and_is_released_on_close(tmp_path):
    from odradek.log.dir_lock import LogDirLock

    first = LogDirLock.acquire(tmp_path / "data")
    with pytest.raises(LogDirError, match=rf"locked by pid {os.getpid()}"):
        LogDirLock.acquire(tmp_path / "data")
    first.release()
    LogDirLock.acquire(tmp_path / "data").release()


def test_recorded_cluster_ids_read_without_writing(tmp_path):
    fresh, used = tmp_path / "fresh", tmp_path / "used"
    fresh.mkdir()
    used.mkdir()
    (used / "meta.properties").write_text("version=1\ncluster.id=abc\nnode.id=3\n")

    assert LogManager.recorded_cluster_ids([fresh, used], node_id=3) == {used: "abc"}
    assert list(fresh.iterdir()) == []
    with pytest.raises(LogDirError, match="belongs to node.id 3"):
        LogManager.recorded_cluster_ids([used], node_id=4)


def test_segment_files_beyond_the_open_file_bound_are_closed_and_reopened(tmp_path):
    """10,000 partitions failed with 'Too many open files' when every segment held three
    descriptors; now the broker keeps a bounded set of segment files open, least recently used
    closed first, and every partition stays readable and writable."""
    from odradek.log.file_handles import OPEN_FILES
    from odradek.protocol.records import encode_batch, validate_batches

    previous = OPEN_FILES.limit
    try:
        assert LogManager.bound_open_files(100) == 256, "never fewer than 256"
        assert LogManager.bound_open_files(20_000) == 10_000
        clock = FakeClock()
        manager = make_manager([tmp_path], clock)
        manager.startup(lambda tp: LogConfig())  # bounds the set by this process's limit
        OPEN_FILES.set_limit(40)
        logs = [manager.create_log(TopicPartition("wide", p), LogConfig()) for p in range(200)]
        for partition, log in enumerate(logs):
            buffer = bytearray(encode_batch([(1, None, b"record %d" % partition)]))
            log.append(buffer, validate_batches(buffer), 0)
            assert OPEN_FILES.count <= 40
        for partition, log in enumerate(logs):
            assert b"record %d" % partition in log.read(0, 1 << 20, log.log_end_offset)
        assert OPEN_FILES.count <= 40
        manager.shutdown()
        reopened = make_manager([tmp_path], clock)
        reopened.startup(lambda tp: LogConfig())
        assert all(reopened.get_log(TopicPartition("wide", p)).log_end_offset == 1 for p in range(200))
        reopened.shutdown()
    finally:
        OPEN_FILES.set_limit(previous)


def test_a_crash_between_a_write_and_its_rename_leaves_nothing_after_the_next_start(tmp_path):
    clock = FakeClock()
    manager = make_manager([tmp_path], clock)
    manager.startup(lambda tp: LogConfig())
    tp = TopicPartition("t", 0)
    log = manager.create_log(tp, LogConfig())
    append(log, clock, 3)
    manager.shutdown()
    # What writers killed before their rename leave: a checkpoint's, a snapshot's, an index's.
    leftovers = [tmp_path / "recovery-point-offset-checkpoint.140211.tmp",
                 tmp_path / "t-0" / "00000000000000000003.snapshot.140212.tmp",
                 tmp_path / "t-0" / "00000000000000000000.txnindex.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    manager = make_manager([tmp_path], clock)
    logs = manager.startup(lambda tp: LogConfig())
    assert logs[tp].log_end_offset == 3
    assert [path for path in leftovers if path.exists()] == []
    assert not [p for p in tmp_path.rglob("*.tmp")]
