"""PartitionLog and LogSegment: append, roll, read, recover, truncate, timestamps."""

import logging
import os

import pytest

from odradek.clock import FakeClock
from odradek.log.log_config import LogConfig
from odradek.log.offset_index import OffsetIndex
from odradek.log.partition_log import PartitionLog
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import BATCH_HEADER_SIZE, decode_records, encode_batch, read_batch_header, validate_batches


def make_batch(clock, count=1, value_size=10, timestamp=None, codec=0):
    timestamp = clock.now_ms() if timestamp is None else timestamp
    return encode_batch(
        [(timestamp + i, f"k{i}".encode(), bytes([i % 251]) * value_size) for i in range(count)], codec=codec
    )


def append(log, *batches, leader_epoch=0):
    buffer = bytearray(b"".join(batches))
    return log.append(buffer, validate_batches(buffer), leader_epoch)


def all_records(log, max_offset=None):
    max_offset = log.log_end_offset if max_offset is None else max_offset
    records = []
    offset = log.log_start_offset
    while offset < max_offset:
        data = log.read(offset, 1 << 20, max_offset)
        assert data, f"no data at {offset}"
        position = 0
        while position < len(data):
            header = read_batch_header(data, position)
            records.extend(r for r in decode_records(data, header) if r.offset >= offset)
            position += header.size
            offset = header.next_offset
    return records


@pytest.fixture
def clock():
    return FakeClock()


def open_log(tmp_path, clock, **config):
    return PartitionLog.open(tmp_path / "topic-0", LogConfig(**config), clock, clean_shutdown=True)


def test_append_assigns_offsets_and_reads_back(tmp_path, clock):
    log = open_log(tmp_path, clock)
    first = append(log, make_batch(clock, 3), make_batch(clock, 2))
    assert first.base_offset == 0 and first.last_offset == 4 and first.log_append_time_ms == -1
    second = append(log, make_batch(clock, 1), leader_epoch=7)
    assert second.base_offset == 5
    assert log.log_end_offset == 6
    records = all_records(log)
    assert [r.offset for r in records] == list(range(6))
    data = log.read(5, 1000, 6)
    assert read_batch_header(data, 0).partition_leader_epoch == 7


def test_segment_rolls_on_size(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=1000)
    for _ in range(10):
        append(log, make_batch(clock, 1, value_size=300))
    assert len(log.segments) > 3
    assert sorted(p.name for p in log.directory.glob("*.log"))[1] == f"{log.segments[1].base_offset:020d}.log"
    assert all(s.size <= 1000 for s in log.segments)
    assert [r.offset for r in all_records(log)] == list(range(10))


def test_segment_rolls_on_time(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_ms=1000)
    append(log, make_batch(clock))
    clock.advance(500)
    append(log, make_batch(clock))
    assert len(log.segments) == 1
    clock.advance(600)
    append(log, make_batch(clock))
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_read_returns_whole_batches_bounded_by_max_bytes_and_high_watermark(tmp_path, clock):
    log = open_log(tmp_path, clock)
    batches = [make_batch(clock, 2, value_size=100) for _ in range(5)]
    for batch in batches:
        append(log, batch)
    size = len(batches[0])
    assert len(log.read(0, size * 2 + size // 2, 10)) == size * 2
    assert len(log.read(3, 1, 10)) == size  # first batch whole even beyond max_bytes (KIP-74)
    assert read_batch_header(log.read(3, 1, 10), 0).base_offset == 2
    assert len(log.read(0, 1 << 20, 4)) == size * 2  # batches at and above the high watermark are hidden
    assert log.read(4, 1 << 20, 4) == b""
    assert log.read(10, 1 << 20, 10) == b""
    with pytest.raises(KafkaError) as error:
        log.read(11, 100, 11)
    assert error.value.code == ErrorCode.offset_out_of_range


def test_reopen_after_clean_close_keeps_everything(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=2000, index_interval_bytes=100)
    for i in range(30):
        append(log, make_batch(clock, 2, value_size=50))
    before = all_records(log)
    log.close()
    log = open_log(tmp_path, clock, segment_bytes=2000, index_interval_bytes=100)
    assert log.log_end_offset == 60
    assert all_records(log) == before
    append(log, make_batch(clock))
    assert log.log_end_offset == 61


def reopen_unclean(log, clock, **config):
    log.close()
    return PartitionLog.open(log.directory, LogConfig(**config), clock, recovery_point=0, clean_shutdown=False)


def test_recovery_cuts_torn_tail(tmp_path, clock):
    log = open_log(tmp_path, clock)
    for _ in range(5):
        append(log, make_batch(clock, 3))
    before = all_records(log)
    path = log.active_segment.log_path
    partial = make_batch(clock, 3)[:40]
    log.close()
    with open(path, "ab") as f:
        f.write(partial)
    log = PartitionLog.open(tmp_path / "topic-0", LogConfig(), clock, clean_shutdown=False)
    assert log.log_end_offset == 15
    assert os.path.getsize(path) == log.active_segment.size
    assert all_records(log) == before
    assert append(log, make_batch(clock)).base_offset == 15


def test_recovery_cuts_at_flipped_byte(tmp_path, clock, caplog):
    log = open_log(tmp_path, clock, index_interval_bytes=10)
    batches = [make_batch(clock, 2, value_size=20) for _ in range(6)]
    for batch in batches:
        append(log, batch)
    path = log.active_segment.log_path
    log.close()
    corrupt_at = len(batches[0]) * 3 + 70
    with open(path, "r+b") as f:
        f.seek(corrupt_at)
        byte = f.read(1)
        f.seek(corrupt_at)
        f.write(bytes([byte[0] ^ 0xFF]))
    with caplog.at_level("WARNING", logger="odradek.log.segment"):
        log = PartitionLog.open(tmp_path / "topic-0", LogConfig(index_interval_bytes=10), clock, clean_shutdown=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in m and f"byte {len(batches[0]) * 3} (offset 6)" in m and "CRC32C" in m for m in warnings), warnings
    assert log.log_end_offset == 6
    assert os.path.getsize(path) == len(batches[0]) * 3
    assert [r.offset for r in all_records(log)] == list(range(6))
    assert log.active_segment.offset_index.entries > 0
    assert log.active_segment.offset_index.last_entry()[1] < log.active_segment.size


def test_recovery_deletes_segments_after_a_truncated_one(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=600)
    for _ in range(10):
        append(log, make_batch(clock, 1, value_size=200))
    first = log.segments[0]
    assert len(log.segments) > 2
    log.close()
    with open(first.log_path, "r+b") as f:
        f.truncate(first.size - 5)
    log = PartitionLog.open(tmp_path / "topic-0", LogConfig(segment_bytes=600), clock, clean_shutdown=False)
    assert len(log.segments) == 1
    assert log.log_end_offset == [h.next_offset for h in log.iter_batch_headers()][-1]


def test_deleted_index_is_rebuilt(tmp_path, clock):
    log = open_log(tmp_path, clock, index_interval_bytes=50)
    for _ in range(20):
        append(log, make_batch(clock, 1, value_size=40))
    entries = log.active_segment.offset_index.all_entries()
    time_entries = log.active_segment.time_index.all_entries()
    assert entries
    log.close()
    log.active_segment.offset_index.path.unlink()
    log.active_segment.time_index.path.write_bytes(b"\x00" * 7)
    log = open_log(tmp_path, clock, index_interval_bytes=50)
    assert log.active_segment.offset_index.all_entries() == entries
    assert log.active_segment.time_index.all_entries()[: len(time_entries)] == time_entries
    assert [r.offset for r in all_records(log)] == list(range(20))


def test_index_lookup_finds_greatest_entry_at_or_below(tmp_path, clock):
    log = open_log(tmp_path, clock, index_interval_bytes=1)
    for _ in range(10):
        append(log, make_batch(clock, 3))
    index = log.active_segment.offset_index
    assert index.entries == 9  # every batch but the first
    for offset in range(30):
        entry_offset, position = index.lookup(offset)
        assert entry_offset <= offset
        header = log.active_segment.find_batch(offset)
        assert header.base_offset <= offset <= header.last_offset
    assert index.lookup(1) == (0, 0)


def test_a_large_index_answers_as_a_scan_of_its_entries_would(tmp_path):
    """An index of thousands of entries (a full 1 GiB segment has up to 262,144) is searched
    partly on disk and partly in a window read at once; every answer is the scan's."""
    index = OffsetIndex(tmp_path / "00000000000000001000.index", 1000)
    entries = [(1000 + 3 * i + 2, 4096 * i + 7) for i in range(2000)]
    for offset, position in entries:
        index.append(offset, position)

    def scan(offset):
        below = [entry for entry in entries if entry[0] <= offset]
        return below[-1] if below else (1000, 0)

    for offset in [0, 999, 1000, 1001, 1002, 1003, 2500, 3 * 1999 + 1002, 3 * 1999 + 1003, 10**9] + list(range(1000, 7000, 37)):
        assert index.lookup(offset) == scan(offset), offset
    for position in [0, 6, 7, 8, 4096 * 511 + 7, 4096 * 512 + 6, 4096 * 1999 + 7, 10**12] + list(range(0, 4096 * 2000, 50_003)):
        below = [p for _, p in entries if p <= position]
        assert index.position_at_or_before(position) == (below[-1] if below else 0), position
    index.truncate_to_position(4096 * 1500 + 7)
    assert index.entries == 1500
    assert index.lookup(10**9) == entries[1499]


def test_a_reader_moving_on_searches_the_index_with_at_most_one_read(tmp_path, monkeypatch):
    """A consumer's fetches search the index just past their last search: answered from the window
    read then, or with one read of the next; a jump, a step back, a truncation and a closed file
    all still get the scan's answer."""
    index = OffsetIndex(tmp_path / "00000000000000000000.index", 0)
    entries = [(4 * i + 3, 65_536 * i) for i in range(5000)]
    for offset, position in entries:
        index.append(offset, position)

    def scan(position):
        below = [p for _, p in entries if p <= position]
        return below[-1] if below else 0

    reads = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda *args: reads.append(args) or real_pread(*args))
    index.position_at_or_before(0)
    for position in range(1_000_000, 65_536 * 5000, 1_048_576):  # a consumer taking 1 MiB a fetch
        reads.clear()
        assert index.position_at_or_before(position) == scan(position), position
        assert len(reads) <= 1, position
    for position in (10, 65_536 * 4000 + 1, 65_536 * 100, 65_536 * 4999, 10**12, 65_536 * 2):  # jumps
        assert index.position_at_or_before(position) == scan(position), position
    index.truncate_to_position(65_536 * 3000)
    entries = entries[:3000]
    assert index.position_at_or_before(65_536 * 2999 + 5) == scan(65_536 * 4999)
    index.append(3 * 10**5, 65_536 * 3000 + 100)
    entries.append((3 * 10**5, 65_536 * 3000 + 100))
    assert index.position_at_or_before(10**12) == 65_536 * 3000 + 100
    index.close()
    assert index.position_at_or_before(65_536 * 2500) == scan(65_536 * 2500)
    assert index.lookup(4 * 2500 + 3) == entries[2500]


def test_index_entries_are_written_in_groups_and_always_found(tmp_path, clock):
    """Index entries reach the file a few hundred bytes at a time, yet every lookup sees them at
    once; a flush or a clean close writes the rest, and after a crash recovery rebuilds them."""
    log = open_log(tmp_path, clock, index_interval_bytes=1)
    for _ in range(11):
        append(log, make_batch(clock, 3))
    index = log.active_segment.offset_index
    assert index.entries == 10
    assert index.path.stat().st_size == 0  # 80 bytes held
    assert index.lookup(29) == (29, log.active_segment.find_batch(27).position)
    assert index.path.stat().st_size == 80  # written before the file was read
    for _ in range(70):
        append(log, make_batch(clock, 3))
    assert index.path.stat().st_size >= 512  # written when enough had gathered, no read needed
    expected = index.all_entries()
    assert len(expected) == 80
    append(log, make_batch(clock, 3))
    log.flush()
    assert index.path.stat().st_size == 81 * 8
    append(log, make_batch(clock, 3))
    log.close()
    assert index.path.stat().st_size == 82 * 8

    log = open_log(tmp_path, clock, index_interval_bytes=1)
    for _ in range(5):
        append(log, make_batch(clock, 3))
    held = log.active_segment.offset_index
    assert held.path.stat().st_size == 82 * 8  # five entries only in memory: a crash now loses them
    crashed = PartitionLog.open(tmp_path / "topic-0", LogConfig(index_interval_bytes=1), clock, recovery_point=0,
                                clean_shutdown=False)
    assert crashed.active_segment.offset_index.entries == 87
    for offset in (0, 100, 3 * 86, 3 * 88 - 1):
        assert crashed.active_segment.find_batch(offset).base_offset == offset - offset % 3
    assert [r.offset for r in all_records(crashed)] == list(range(3 * 88))


def test_offset_for_timestamp_and_max_timestamp(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=500, index_interval_bytes=100)
    base = 1_000_000
    for i in range(20):
        append(log, encode_batch([(base + i * 10, None, b"x" * 30), (base + i * 10 + 5, None, b"y" * 30)]))
    assert log.offset_for_timestamp(base) == (0, base)
    assert log.offset_for_timestamp(base + 3) == (1, base + 5)
    assert log.offset_for_timestamp(base + 101) == (21, base + 105)
    assert log.offset_for_timestamp(base + 195) == (39, base + 195)
    assert log.offset_for_timestamp(base + 196) is None
    assert log.max_timestamp_offset() == (39, base + 195)
    log.close()
    log = open_log(tmp_path, clock, segment_bytes=500, index_interval_bytes=100)
    assert log.offset_for_timestamp(base + 101) == (21, base + 105)
    assert log.max_timestamp_offset() == (39, base + 195)


def test_max_timestamp_offset_finds_record_inside_batch(tmp_path, clock):
    log = open_log(tmp_path, clock)
    append(log, encode_batch([(10, None, b"a"), (50, None, b"b"), (20, None, b"c")]))
    append(log, encode_batch([(30, None, b"d")]))
    assert log.max_timestamp_offset() == (1, 50)
    assert log.offset_for_timestamp(25) == (1, 50)


def test_log_append_time_stamps_batches(tmp_path, clock):
    log = open_log(tmp_path, clock, message_timestamp_type="LogAppendTime")
    result = append(log, make_batch(clock, 2, timestamp=5))
    assert result.log_append_time_ms == clock.now_ms()
    data = log.read(0, 1000, 2)
    header = read_batch_header(data, 0)
    assert header.is_log_append_time and header.max_timestamp == clock.now_ms()
    assert validate_batches(data)  # CRC recomputed
    assert [r.timestamp for r in decode_records(data, header)] == [clock.now_ms()] * 2


def test_truncate_to_removes_batches_and_later_segments(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=500)
    for _ in range(10):
        append(log, make_batch(clock, 2, value_size=100))
    log.truncate_to(8)
    assert log.log_end_offset == 8
    assert [r.offset for r in all_records(log)] == list(range(8))
    assert append(log, make_batch(clock)).base_offset == 8
    log.truncate_to(0)
    assert log.log_end_offset == 0 and log.size_bytes == 0


def test_sequential_reads_find_where_the_last_read_ended(tmp_path, clock):
    """A consumer's next fetch starts where its last read ended: found without the index, and
    still right after the log is truncated and written again with batches of other sizes."""
    log = open_log(tmp_path, clock, segment_bytes=4000)
    for count in (1, 3, 2, 5, 1, 4, 2, 3):
        append(log, make_batch(clock, count, value_size=100))

    def read_through(max_bytes):
        offsets, offset = [], 0
        while offset < log.log_end_offset:
            data = log.read(offset, max_bytes, log.log_end_offset)
            position = 0
            while position < len(data):
                header = read_batch_header(data, position)
                offsets.append(header.base_offset)
                position += header.size
                offset = header.next_offset
        return offsets

    first = read_through(700)
    assert first == read_through(700) == read_through(1 << 20)
    # where a read ended, a later reader without room for the batch there gets nothing, then the
    # batch once it has room
    second = first[1]
    assert log.read_region(second, 10, log.log_end_offset, min_one_batch=False) is None
    assert read_batch_header(log.read(second, 10, log.log_end_offset), 0).base_offset == second
    assert log.read(log.log_end_offset, 700, log.log_end_offset) == b""
    log.truncate_to(6)
    for count in (2, 2, 2):
        append(log, make_batch(clock, count, value_size=30))
    assert read_through(700) == [offset for offset in first if offset < 6] + [6, 8, 10]
    assert [r.offset for r in all_records(log)] == list(range(12))


def test_a_consumer_reading_on_reads_no_batch_header_on_its_own(tmp_path, clock, monkeypatch):
    """Where a Fetch cut by its max bytes stopped, the header of the batch there came with the
    walk that found the cut: the consumer's next Fetch starts from it without reading it again."""
    log = open_log(tmp_path, clock)
    for _ in range(400):
        append(log, make_batch(clock, 10, value_size=200))
    header_reads = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: (header_reads.append(at) if n == BATCH_HEADER_SIZE else None)
                        or real_pread(fd, n, at))
    offsets, offset = [], 0
    while offset < log.log_end_offset:
        region, _after = log.read_region(offset, 20_000, log.log_end_offset)
        data = region.read()
        ends = _batch_ends(data)
        assert ends[-1] == len(data) and len(data) <= 20_000
        position = 0
        for end in ends:
            header = read_batch_header(data, position)
            offsets.append(header.base_offset)
            offset, position = header.next_offset, end
    assert offsets == list(range(0, 4000, 10))
    assert header_reads == [0]  # the first batch's, and no other


def _batch_ends(data) -> list[int]:
    ends, position = [], 0
    while position < len(data):
        position += read_batch_header(data, position).size
        ends.append(position)
    return ends


@pytest.mark.parametrize("max_bytes", [150, 5_000, 100_000, 300_000])
def test_a_read_cut_by_max_bytes_ends_after_the_last_batch_that_fits(tmp_path, clock, max_bytes):
    """A consumer behind on a log of small batches gets as many whole batches as fit, never part of
    one: the end is found from the offset index and a few headers, not by reading the records."""
    log = open_log(tmp_path, clock)
    sizes = []
    for index in range(3000):
        batch = make_batch(clock, 1 + index % 3, value_size=20 + index % 50)
        sizes.append(len(batch))
        append(log, batch)
    offset = 0
    while offset < log.log_end_offset:
        data = log.read(offset, max_bytes, log.log_end_offset)
        ends = _batch_ends(data)
        assert ends[-1] == len(data), "whole batches only"
        first = read_batch_header(data, 0)
        assert len(data) <= max(max_bytes, first.size)
        following = log.read(read_batch_header(data, ends[-2] if len(ends) > 1 else 0).next_offset, 1, log.log_end_offset)
        if following:
            assert len(data) + read_batch_header(following, 0).size > max_bytes, "the next batch would have fitted"
        offset = read_batch_header(data, ends[-2] if len(ends) > 1 else 0).next_offset
    stable = 4000  # a bound inside the log (a high watermark, a last stable offset): a read stops there
    data = log.read(3900, 1 << 20, stable)
    headers = [read_batch_header(data, position) for position in [0] + _batch_ends(data)[:-1]]
    assert all(header.base_offset < stable for header in headers)
    assert read_batch_header(log.read(headers[-1].next_offset, 1, log.log_end_offset)).base_offset >= stable


def test_flush_advances_recovery_point_and_flush_messages(tmp_path, clock):
    log = open_log(tmp_path, clock, flush_messages=5)
    append(log, make_batch(clock, 3))
    assert log.recovery_point == 0 and not log.flush_due
    append(log, make_batch(clock, 3))
    assert log.flush_due, "6 unflushed messages with flush.messages=5"
    log.flush()
    assert log.recovery_point == 6 and not log.flush_due
    append(log, make_batch(clock, 1))
    log.flush(up_to_offset=7)
    assert log.recovery_point == 7


def test_failed_write_leaves_log_unchanged_and_raises_storage_error(tmp_path, clock, monkeypatch):
    log = open_log(tmp_path, clock)
    append(log, make_batch(clock, 2))
    size = log.active_segment.size

    def failing_pwrite(fd, data, position):
        os.write(fd, bytes(data)[:10])  # a partial write before the failure
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("odradek.log.segment.os.pwrite", failing_pwrite)
    with pytest.raises(KafkaError) as error:
        append(log, make_batch(clock, 2))
    assert error.value.code == ErrorCode.kafka_storage_error
    assert "28" in error.value.message
    monkeypatch.undo()
    assert log.log_end_offset == 2 and log.active_segment.size == size
    assert os.path.getsize(log.active_segment.log_path) == size
    assert append(log, make_batch(clock)).base_offset == 2


def test_iter_batch_headers_from_offset(tmp_path, clock):
    log = open_log(tmp_path, clock, segment_bytes=300)
    for _ in range(6):
        append(log, make_batch(clock, 2, value_size=100))
    assert [h.base_offset for h in log.iter_batch_headers()] == [0, 2, 4, 6, 8, 10]
    assert [h.base_offset for h in log.iter_batch_headers(5)] == [4, 6, 8, 10]


def test_log_config_from_topic_config_ignores_other_names():
    config = LogConfig.from_topic_config(
        {"segment.bytes": "1024", "segment.ms": 5, "message.timestamp.type": "LogAppendTime", "retention.ms": 1}
    )
    assert config.segment_bytes == 1024 and config.segment_ms == 5
    assert config.message_timestamp_type == "LogAppendTime"
    assert config.index_interval_bytes == 4096


def test_flush_in_a_worker_thread_while_appending(tmp_path, clock):
    import threading

    log = open_log(tmp_path, clock, segment_bytes=600)
    stop = threading.Event()
    errors = []

    def flusher():
        while not stop.is_set():
            try:
                log.flush()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    thread = threading.Thread(target=flusher)
    thread.start()
    try:
        for _ in range(200):
            append(log, make_batch(clock, 1, value_size=100))
    finally:
        stop.set()
        thread.join()
    assert not errors
    log.flush()
    assert log.recovery_point == log.log_end_offset == 200
