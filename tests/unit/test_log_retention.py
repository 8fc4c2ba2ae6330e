"""Retention (time, size, log start offset), segment.ms roll by wall clock, DeleteRecords'
advance of the log start offset, and the deferred removal of `*.deleted` segment files."""

import pytest

from odradek.clock import FakeClock
from odradek.log.log_config import LogConfig
from odradek.log.partition_log import PartitionLog
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import encode_batch, read_batch_header, validate_batches

HOUR_MS = 3_600_000


@pytest.fixture
def clock():
    return FakeClock()


def open_log(tmp_path, clock, **config):
    return PartitionLog.open(tmp_path / "topic-0", LogConfig(**config), clock, clean_shutdown=True)


def append_one(log, clock, timestamp=None, value_size=100):
    timestamp = clock.now_ms() if timestamp is None else timestamp
    buffer = bytearray(encode_batch([(timestamp, b"k", b"v" * value_size)]))
    return log.append(buffer, validate_batches(buffer), 0)


def segment_per_batch(tmp_path, clock, batches, **config):
    """A log with one batch per segment (segment.bytes below two batches)."""
    log = open_log(tmp_path, clock, segment_bytes=200, file_delete_delay_ms=0, **config)
    for timestamp in batches:
        append_one(log, clock, timestamp)
    return log


def bases(log):
    return [segment.base_offset for segment in log.segments]


def test_retention_by_time_deletes_exactly_the_old_closed_segments(tmp_path, clock):
    now = clock.now_ms()
    timestamps = [now - 5 * HOUR_MS, now - 4 * HOUR_MS, now - 3 * HOUR_MS, now - HOUR_MS, now - 10 * HOUR_MS]
    log = segment_per_batch(tmp_path, clock, timestamps, retention_ms=2 * HOUR_MS)
    assert bases(log) == [0, 1, 2, 3, 4]
    # Segments 0..2 are older than 2 h; 3 is younger, which stops the scan even though the
    # active segment 4 carries an old timestamp (and the active segment is never deleted).
    assert log.delete_retention_segments(now) == 3
    assert bases(log) == [3, 4]
    assert log.log_start_offset == 3
    with pytest.raises(KafkaError) as error:
        log.read(2, 1000, 5)
    assert error.value.code == ErrorCode.offset_out_of_range
    assert read_batch_header(log.read(3, 1000, 5), 0).base_offset == 3
    assert log.delete_retention_segments(now) == 0


def test_retention_by_time_needs_delete_in_cleanup_policy(tmp_path, clock):
    old = clock.now_ms() - 10 * HOUR_MS
    log = segment_per_batch(tmp_path, clock, [old, old, old], retention_ms=HOUR_MS, cleanup_policy=("compact",))
    assert log.delete_retention_segments(clock.now_ms()) == 0
    log.set_config(LogConfig(segment_bytes=200, retention_ms=HOUR_MS, cleanup_policy=("compact", "delete")))
    assert log.delete_retention_segments(clock.now_ms()) == 2


def test_retention_by_time_minus_one_keeps_everything(tmp_path, clock):
    log = segment_per_batch(tmp_path, clock, [0, 0, 0], retention_ms=-1)
    assert log.delete_retention_segments(clock.now_ms()) == 0


def test_retention_by_size_keeps_at_least_retention_bytes(tmp_path, clock):
    log = segment_per_batch(tmp_path, clock, [clock.now_ms()] * 6)
    size = log.segments[0].size
    # 6 segments of `size` bytes; Kafka's rule: delete the oldest while what remains would
    # still be >= retention.bytes. With 2.5 segments' worth allowed, 3 remain.
    log.set_config(LogConfig(segment_bytes=200, retention_bytes=int(size * 2.5), file_delete_delay_ms=0))
    assert log.delete_retention_segments(clock.now_ms()) == 3
    assert bases(log) == [3, 4, 5]
    assert log.log_start_offset == 3
    log.set_config(LogConfig(segment_bytes=200, retention_bytes=size * 2, file_delete_delay_ms=0))
    assert log.delete_retention_segments(clock.now_ms()) == 1
    assert bases(log) == [4, 5]
    log.set_config(LogConfig(segment_bytes=200, retention_bytes=0, file_delete_delay_ms=0))
    assert log.delete_retention_segments(clock.now_ms()) == 1
    assert bases(log) == [5]  # never the active segment


def test_retention_never_deletes_above_the_high_watermark(tmp_path, clock):
    old = clock.now_ms() - 10 * HOUR_MS
    log = segment_per_batch(tmp_path, clock, [old] * 5, retention_ms=HOUR_MS)
    assert log.delete_retention_segments(clock.now_ms(), high_watermark=2) == 2
    assert bases(log) == [2, 3, 4]


def test_deleted_segments_are_renamed_then_removed_after_file_delete_delay(tmp_path, clock):
    old = clock.now_ms() - 10 * HOUR_MS
    log = open_log(tmp_path, clock, segment_bytes=200, retention_ms=HOUR_MS, file_delete_delay_ms=60_000)
    for _ in range(3):
        append_one(log, clock, old)
    old_segment = log.segments[0]
    data_before = old_segment.read(0, 1000)
    assert log.delete_retention_segments(clock.now_ms()) == 2
    names = sorted(path.name for path in log.directory.iterdir())
    assert "00000000000000000000.log.deleted" in names
    assert "00000000000000000000.index.deleted" in names
    assert "00000000000000000000.log" not in names
    # A reader still holding the old segment reads it through its open fd.
    assert old_segment.read(0, 1000) == data_before
    clock.advance(59_000)
    log.delete_retention_segments(clock.now_ms())
    assert (log.directory / "00000000000000000000.log.deleted").exists()
    clock.advance(2_000)
    log.delete_retention_segments(clock.now_ms())
    assert not any(path.name.endswith(".deleted") for path in log.directory.iterdir())


def test_open_removes_leftover_deleted_and_cleaned_files(tmp_path, clock):
    old = clock.now_ms() - 10 * HOUR_MS
    log = segment_per_batch(tmp_path, clock, [old] * 3, retention_ms=HOUR_MS)
    log.set_config(LogConfig(segment_bytes=200, retention_ms=HOUR_MS, file_delete_delay_ms=60_000))
    log.delete_retention_segments(clock.now_ms())
    (log.directory / "00000000000000000002.log.cleaned").write_bytes(b"partial")
    directory = log.directory
    for segment in log.segments:
        segment.close()  # a crash: nothing removed
    again = PartitionLog.open(directory, LogConfig(segment_bytes=200), clock, clean_shutdown=False, log_start_offset=2)
    assert sorted(path.name for path in directory.iterdir()) == [
        "00000000000000000002.index", "00000000000000000002.log", "00000000000000000002.snapshot",
        "00000000000000000002.timeindex", "leader-epoch-checkpoint",
    ]
    assert (again.log_start_offset, again.log_end_offset) == (2, 3)


def test_maybe_roll_by_time_rolls_an_idle_active_segment(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_ms=1000)
    assert not log.maybe_roll_by_time(clock.now_ms() + 10_000)  # empty: nothing to roll
    append_one(log, clock)
    clock.advance(1000)
    assert not log.maybe_roll_by_time(clock.now_ms())
    clock.advance(1)
    assert log.maybe_roll_by_time(clock.now_ms())
    assert bases(log) == [0, 1]
    assert log.segments[0].max_timestamp() is not None  # closed segment got its final time entry


def test_idle_partition_ages_out_after_roll_by_time(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_ms=HOUR_MS, retention_ms=2 * HOUR_MS, file_delete_delay_ms=0)
    append_one(log, clock)
    clock.advance(3 * HOUR_MS)
    log.maybe_roll_by_time(clock.now_ms())
    assert log.delete_retention_segments(clock.now_ms()) == 1
    assert (log.log_start_offset, log.log_end_offset) == (1, 1)
    assert log.read(1, 1000, 1) == b""


def test_advance_log_start_offset_drops_segments_below_it(tmp_path, clock):
    log = segment_per_batch(tmp_path, clock, [clock.now_ms()] * 5)
    assert log.advance_log_start_offset(2) == 2
    assert bases(log) == [2, 3, 4]
    assert log.log_start_offset == 2
    assert log.advance_log_start_offset(1) == 0  # never moves back
    assert log.log_start_offset == 2
    with pytest.raises(KafkaError) as error:
        log.read(1, 1000, 5)
    assert error.value.code == ErrorCode.offset_out_of_range


def test_advance_log_start_offset_inside_a_segment_keeps_it_but_hides_lower_offsets(tmp_path, clock):
    log = open_log(tmp_path, clock)
    for _ in range(4):
        append_one(log, clock)
    assert log.advance_log_start_offset(2) == 0
    assert bases(log) == [0]
    assert log.log_start_offset == 2
    with pytest.raises(KafkaError):
        log.read(1, 1000, 4)
    assert read_batch_header(log.read(2, 1000, 4), 0).base_offset == 2
    log.close()
    again = PartitionLog.open(log.directory, LogConfig(), clock, clean_shutdown=True, log_start_offset=2)
    assert again.log_start_offset == 2


def test_advance_log_start_offset_to_log_end_keeps_active_segment(tmp_path, clock):
    log = segment_per_batch(tmp_path, clock, [clock.now_ms()] * 3)
    log.advance_log_start_offset(3)
    assert bases(log) == [2]
    assert (log.log_start_offset, log.log_end_offset) == (3, 3)
    assert log.read(3, 1000, 3) == b""
    append_one(log, clock)
    assert read_batch_header(log.read(3, 1000, 4), 0).base_offset == 3


def test_advance_log_start_offset_beyond_log_end_is_refused(tmp_path, clock):
    log = open_log(tmp_path, clock)
    append_one(log, clock)
    with pytest.raises(KafkaError) as error:
        log.advance_log_start_offset(5)
    assert error.value.code == ErrorCode.offset_out_of_range


def test_roll_flushes_the_rolled_segment_in_the_background(tmp_path, clock):
    from odradek.log.partition_log import _ROLL_FLUSHER

    log = open_log(tmp_path, clock, segment_bytes=200)
    for _ in range(3):
        append_one(log, clock)
    _ROLL_FLUSHER.submit(lambda: None).result()  # wait for the queued flushes
    assert bases(log) == [0, 1, 2]
    assert log.recovery_point == 2  # everything below the active segment is durable
