"""LogCleaner: latest record per key, tombstones until delete.retention.ms, dirty ratio and
compaction lags, batch fields kept, swap crash safety, appends running during cleaning; batches
settled from their bytes (kept whole, partly, or dropped; every codec), checked against a model."""

import logging
import os
import random
import threading

import pytest

from odradek.clock import FakeClock
from odradek.log import cleaner as cleaner_module
from odradek.log.cleaner import CLEANER_OFFSET_CHECKPOINT, LogCleaner
from odradek.log.log_config import LogConfig
from odradek.log.manager import LogManager
from odradek.log.partition_log import PartitionLog
from odradek.protocol.compression import CODECS, GZIP, LZ4, NONE
from odradek.protocol.records import (
    assemble_batch,
    decode_records,
    encode_batch,
    encode_marker_batch,
    read_batch_header,
    validate_batches,
    write_varint,
)
from odradek.protocol.topic_partition import TopicPartition

TP = TopicPartition("compacted", 0)
DAY_MS = 86_400_000


@pytest.fixture
def clock():
    return FakeClock()


def compact_config(**overrides):
    values = dict(
        segment_bytes=600, cleanup_policy=("compact",), index_interval_bytes=100, file_delete_delay_ms=0,
        min_cleanable_dirty_ratio=0.01,
    )
    values.update(overrides)
    return LogConfig(**values)


def setup(tmp_path, clock, config=None):
    manager = LogManager([tmp_path / "logs"], clock, cluster_id="abc", node_id=1)
    config = config or compact_config()
    manager.startup(lambda tp: config)
    log = manager.create_log(TP, config)
    return manager, log, LogCleaner(manager, clock)


def produce(log, clock, pairs, **batch_fields):
    """One batch of (key, value) pairs; value None is a tombstone."""
    buffer = bytearray(encode_batch([(clock.now_ms(), key, value) for key, value in pairs], **batch_fields))
    return log.append(buffer, validate_batches(buffer), 0)


def batches(log):
    """(header, records) of every batch from the log start, via the public read path."""
    found = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20, log.log_end_offset)
        if not data:
            break
        validate_batches(bytearray(data))  # every batch on disk is a valid v2 batch
        position = 0
        while position < len(data):
            header = read_batch_header(data, position)
            found.append((header, decode_records(data, header)))
            position += header.size
            offset = header.next_offset
    return found


def records(log):
    return [record for _, batch_records in batches(log) for record in batch_records]


def latest_view(log):
    """What a consumer reading the whole log ends up with (a dict by key)."""
    view = {}
    for record in records(log):
        if record.value is None:
            view.pop(record.key, None)
        else:
            view[record.key] = record.value
    return view


def test_cleaner_keeps_latest_record_per_key_with_offsets(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    model = {}
    for round_ in range(8):
        pairs = [(f"k{i}".encode(), f"v{round_}-{i}".encode() * 3) for i in range(5)]
        produce(log, clock, pairs)
        model.update(pairs)
    before = records(log)
    active_base = log.active_segment.base_offset
    assert cleaner.clean_once(clock.now_ms()) == 1
    after = records(log)
    assert latest_view(log) == model
    offsets = [record.offset for record in after]
    assert offsets == sorted(set(offsets))
    assert set(offsets) <= {record.offset for record in before}
    # Below the active segment, each key appears at most once; the active one is untouched.
    closed_keys = [record.key for record in after if record.offset < active_base]
    assert len(closed_keys) == len(set(closed_keys))
    assert [r for r in after if r.offset >= active_base] == [r for r in before if r.offset >= active_base]
    assert len(after) < len(before)
    assert (log.log_start_offset, log.log_end_offset) == (0, 40)
    assert cleaner.stats.records_removed == len(before) - len(after)
    assert not any(path.name.endswith((".cleaned", ".swap")) for path in log.directory.iterdir())
    assert cleaner.first_dirty_offset(TP) == active_base


def test_tombstones_kept_until_delete_retention_ms_after_cleaning(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock, compact_config(delete_retention_ms=DAY_MS))
    produce(log, clock, [(b"a", b"1" * 100), (b"b", b"1" * 100), (b"c", b"1" * 100)])
    produce(log, clock, [(b"a", None), (b"b", b"2" * 100)])
    for i in range(6):
        produce(log, clock, [(f"filler{i}".encode(), b"x" * 200)])
    assert cleaner.clean_once(clock.now_ms()) == 1
    kept = {record.key: record.value for record in records(log)}
    assert b"a" in kept and kept[b"a"] is None  # tombstone still there for consumers to see
    assert latest_view(log) == {b"b": b"2" * 100, b"c": b"1" * 100, **{f"filler{i}".encode(): b"x" * 200 for i in range(6)}}
    clock.advance(DAY_MS - 1)
    cleaner.clean_once(clock.now_ms())
    assert any(record.key == b"a" for record in records(log))
    clock.advance(1)
    # No new data arrived, yet the pass runs because a kept tombstone became due.
    assert cleaner.clean_once(clock.now_ms()) == 1
    assert not any(record.key == b"a" for record in records(log))
    assert b"b" in latest_view(log)


def test_min_cleanable_dirty_ratio_holds_back_a_mostly_clean_log(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock, compact_config(min_cleanable_dirty_ratio=0.5))
    for i in range(10):
        produce(log, clock, [(f"k{i}".encode(), b"v" * 200)])
    assert cleaner.clean_once(clock.now_ms()) == 1  # all dirty: ratio 1.0
    produce(log, clock, [(b"k0", b"w" * 200)])
    produce(log, clock, [(b"k1", b"w" * 200)])  # rolls: one more closed dirty segment
    assert cleaner.clean_once(clock.now_ms()) == 0  # a small dirty part: ratio below 0.5
    for i in range(2, 10):
        produce(log, clock, [(f"k{i}".encode(), b"w" * 200)])
    assert cleaner.clean_once(clock.now_ms()) == 1


def test_max_compaction_lag_forces_cleaning_below_the_ratio(tmp_path, clock):
    config = compact_config(min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=60_000)
    manager, log, cleaner = setup(tmp_path, clock, config)
    for i in range(10):
        produce(log, clock, [(f"k{i}".encode(), b"v" * 200)])
    cleaner.clean_once(clock.now_ms())
    for key in (b"k0", b"k1", b"k2", b"k3"):  # two per segment: k0 and k1 land in a closed one
        produce(log, clock, [(key, b"w" * 200)])
    assert cleaner.clean_once(clock.now_ms()) == 0
    clock.advance(60_001)
    assert cleaner.clean_once(clock.now_ms()) == 1
    assert [r.value for r in records(log) if r.key == b"k0"] == [b"w" * 200]


def test_min_compaction_lag_leaves_young_segments_alone(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock, compact_config(min_compaction_lag_ms=60_000))
    for _ in range(5):
        produce(log, clock, [(b"same", b"v" * 200)])
    assert cleaner.clean_once(clock.now_ms()) == 0
    clock.advance(60_000)
    produce(log, clock, [(b"same", b"v" * 200)])
    assert cleaner.clean_once(clock.now_ms()) == 1
    # Segments hold two batches: [0, 1] and [2, 3] are cleaned down to offset 3; [4, 5] is active.
    assert [r.offset for r in records(log)] == [3, 4, 5]


def test_only_compacted_logs_are_cleaned(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock, compact_config(cleanup_policy=("delete",)))
    for _ in range(5):
        produce(log, clock, [(b"same", b"v" * 200)])
    assert cleaner.clean_once(clock.now_ms()) == 0
    assert len(records(log)) == 5


def test_rewritten_batches_keep_producer_fields_codec_and_timestamps(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    timestamps = [clock.now_ms() + i for i in range(4)]
    buffer = bytearray(
        encode_batch(
            [(timestamps[0], b"a", b"1"), (timestamps[1], b"b", b"1"), (timestamps[2], b"a", b"2"), (timestamps[3], b"c", b"1")],
            codec=GZIP, producer_id=42, producer_epoch=3, base_sequence=10,
        )
    )
    log.append(buffer, validate_batches(buffer), 5)
    for i in range(4):
        produce(log, clock, [(f"filler{i}".encode(), b"x" * 300)])
    cleaner.clean_once(clock.now_ms())
    rewritten = [(h, rs) for h, rs in batches(log) if h.producer_id == 42]
    # offsets 1 (b), 2 (a) and 3 (c) survive as one run: one batch.
    assert len(rewritten) == 1
    header, kept = rewritten[0]
    assert (header.base_offset, header.last_offset, header.record_count) == (1, 3, 3)
    assert (header.producer_epoch, header.base_sequence, header.compression) == (3, 11, GZIP)
    assert header.partition_leader_epoch == 5
    assert [(r.offset, r.timestamp, r.key, r.value) for r in kept] == [
        (1, timestamps[1], b"b", b"1"), (2, timestamps[2], b"a", b"2"), (3, timestamps[3], b"c", b"1"),
    ]


def test_gaps_split_batches_into_runs_of_consecutive_offsets(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    produce(log, clock, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"b", b"2"), (b"c", b"1")])
    produce(log, clock, [(b"c", b"2")])
    for i in range(4):
        produce(log, clock, [(f"filler{i}".encode(), b"x" * 300)])
    cleaner.clean_once(clock.now_ms())
    first = [(h.base_offset, h.record_count) for h, rs in batches(log) if h.base_offset < 5]
    assert first == [(2, 2)]  # a@2, b@3; c@4 is superseded by c@5
    assert [r.offset for r in records(log)][:3] == [2, 3, 5]


def test_records_without_key_are_dropped(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    produce(log, clock, [(None, b"orphan"), (b"k", b"v")])
    for i in range(4):
        produce(log, clock, [(f"filler{i}".encode(), b"x" * 300)])
    cleaner.clean_once(clock.now_ms())
    assert all(record.key is not None for record in records(log))


def test_cleaned_log_reopens_after_unclean_shutdown(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    for round_ in range(6):
        produce(log, clock, [(f"k{i}".encode(), f"{round_}".encode() * 50) for i in range(3)])
    cleaner.clean_once(clock.now_ms())
    before = records(log)
    directory = log.directory
    log.close()
    again = PartitionLog.open(directory, compact_config(), clock, recovery_point=0, clean_shutdown=False)
    assert records(again) == before


def test_interrupted_swap_is_completed_at_open(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    for round_ in range(6):
        produce(log, clock, [(f"k{i}".encode(), f"{round_}".encode() * 50) for i in range(3)])
    expected = latest_view(log)
    old = log.segments[0]
    offset_map = {}
    for segment in log.segments[:-1]:
        for header, data in segment.iter_batches():
            for record in decode_records(data, header._replace(position=0)):
                if record.key != b"k0":  # k0 of the first segment survives: a non-empty result
                    offset_map[record.key] = record.offset
    cleaned, changed, _ = cleaner._recopy(log, old, offset_map, False, clock.now_ms())
    assert changed and cleaned is not None
    # Crash right after the commit point: the .log is `.swap`, the old segment still in place.
    for path in log.directory.glob("*.cleaned"):
        os.replace(path, path.with_name(path.name[: -len(".cleaned")] + ".swap"))
    directory = log.directory
    for segment in log.segments:
        segment.close()
    again = PartitionLog.open(directory, compact_config(), clock, recovery_point=0, clean_shutdown=False)
    assert not any(path.name.endswith(".swap") for path in directory.iterdir())
    assert again.segments[0].size == cleaned.size
    assert [(r.key, r.value) for r in records(again)][:1] == [(b"k0", b"0" * 50)]
    assert {k: v for k, v in latest_view(again).items()} == expected


def test_swap_is_refused_when_the_log_changed_under_the_cleaner(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    for round_ in range(6):
        produce(log, clock, [(f"k{i}".encode(), f"{round_}".encode() * 50) for i in range(3)])
    old = log.segments[0]
    cleaned, _, _ = cleaner._recopy(log, old, {b"k0": 10**6}, False, clock.now_ms())
    log.truncate_to(3)  # a follower truncation: the old segment becomes the active one
    assert log.replace_segments([old], [cleaned]) is False
    assert log.log_end_offset == 3
    assert [r.offset for r in records(log)] == [0, 1, 2]


def test_cleaner_checkpoint_survives_restart(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    for round_ in range(6):
        produce(log, clock, [(f"k{i}".encode(), f"{round_}".encode() * 50) for i in range(3)])
    cleaner.clean_once(clock.now_ms())
    manager.shutdown()
    assert TP in __import__("odradek.log.checkpoint", fromlist=["x"]).OffsetCheckpointFile(
        tmp_path / "logs" / CLEANER_OFFSET_CHECKPOINT
    ).read()
    again = LogManager([tmp_path / "logs"], clock, cluster_id="abc", node_id=1)
    again.startup(lambda tp: compact_config())
    assert LogCleaner(again, clock).first_dirty_offset(TP) == cleaner.first_dirty_offset(TP)
    assert LogCleaner(again, clock).clean_once(clock.now_ms()) == 0


def test_appends_and_reads_while_cleaning_in_another_thread(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock, compact_config(segment_bytes=2000))
    keys = [f"key-{i}".encode() for i in range(30)]
    model = {}
    stop = threading.Event()
    errors = []
    passes = [0]

    def clean_repeatedly():
        while not stop.is_set():
            try:
                passes[0] += cleaner.clean_once(clock.now_ms())
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    thread = threading.Thread(target=clean_repeatedly)
    thread.start()
    rng = random.Random(7)
    try:
        for n in range(1500):
            pairs = [(rng.choice(keys), f"{n}-{j}".encode() * rng.randint(1, 20)) for j in range(rng.randint(1, 4))]
            produce(log, clock, pairs)
            model.update(pairs)
            if n % 50 == 0:
                assert latest_view(log) == model  # reads during cleaning see a consistent log
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert passes[0] > 0
    cleaner.clean_once(clock.now_ms())
    assert latest_view(log) == model
    assert log.log_end_offset > 1500
    offsets = [record.offset for record in records(log)]
    assert offsets == sorted(set(offsets))


def test_recreated_log_starts_with_no_clean_part(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    for round_ in range(6):
        produce(log, clock, [(f"k{i}".encode(), f"{round_}".encode() * 50) for i in range(3)])
    cleaner.clean_once(clock.now_ms())
    manager.delete_log(TP)
    manager.remove_deleted()
    log = manager.create_log(TP, compact_config())
    for round_ in range(12):
        produce(log, clock, [(b"same", f"{round_}".encode() * 50)])
    assert cleaner.clean_once(clock.now_ms()) == 1
    assert len([r for r in records(log) if r.offset < log.active_segment.base_offset]) == 1


# --- batches settled from their bytes ---------------------------------------------------------


def fill_closed_segments(log, clock, count=4):
    """Filler batches with their own keys, so that what came before sits in closed segments."""
    for i in range(count):
        produce(log, clock, [(f"filler{i}".encode(), b"x" * 300)])


def model_survivors(all_records, cleaned_below):
    """What a cleaner keeping the latest record per key (tombstones included, key-less records
    dropped) leaves of `all_records`, when everything below offset `cleaned_below` was cleaned."""
    latest = {}
    for record in all_records:
        if record.offset < cleaned_below and record.key is not None:
            latest[record.key] = record.offset
    return [
        record for record in all_records
        if record.offset >= cleaned_below or (record.key is not None and latest[record.key] == record.offset)
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_batch_partly_kept_keeps_records_bytes_offsets_and_timestamps(tmp_path, clock, codec):
    manager, log, cleaner = setup(tmp_path, clock, compact_config(segment_bytes=30_000))
    base_ms = clock.now_ms()
    # 150 records: offset deltas from 64 on take two varint bytes; timestamps go back and forth.
    pairs = [(f"k{i % 40}".encode(), f"value-{i}".encode() * (i % 7)) for i in range(150)]
    records_in = [(base_ms + (i * 37) % 101 - 50, key, value, (("h", str(i).encode()),) if i % 3 else ())
                  for i, (key, value) in enumerate(pairs)]
    buffer = bytearray(encode_batch(records_in, codec=codec, producer_id=9, producer_epoch=2, base_sequence=100))
    log.append(buffer, validate_batches(buffer), 4)
    produce(log, clock, [(b"k0", b"newer"), (b"k39", b"newer")])
    log.roll()
    before = records(log)
    assert cleaner.clean_once(clock.now_ms()) == 1
    after = batches(log)
    assert [r for _, rs in after for r in rs] == model_survivors(before, log.active_segment.base_offset)
    rewritten = [(header, rs) for header, rs in after if header.producer_id == 9]
    # Each key's last record in the batch is one of 110..149; k39 (119) and k0 (120) have newer ones.
    assert [(h.base_offset, h.record_count) for h, _ in rewritten] == [(110, 9), (121, 29)]
    for header, kept in rewritten:
        assert (header.compression, header.producer_epoch) == (codec, 2)
        assert header.base_sequence == 100 + header.base_offset
        assert header.partition_leader_epoch == 4
        assert header.base_timestamp == kept[0].timestamp
        assert header.max_timestamp == max(r.timestamp for r in kept)


def test_batch_of_10000_records_partly_kept(tmp_path, clock):
    """Offset deltas from 8192 on take three varint bytes (librdkafka batches up to 10,000)."""
    manager, log, cleaner = setup(tmp_path, clock, compact_config(segment_bytes=200_000))
    produce(log, clock, [(f"{i % 9000}".encode(), b"v") for i in range(10_000)], codec=LZ4)
    produce(log, clock, [(b"9999", b"w"), (b"8999", b"w")])  # 9999 is no key; 8999 is the record at 8999
    log.roll()
    before = records(log)
    cleaner.clean_once(clock.now_ms())
    assert records(log) == model_survivors(before, log.active_segment.base_offset)
    assert [(h.base_offset, h.record_count) for h, _ in batches(log)][:2] == [(1000, 7999), (9000, 1000)]


def test_batch_partly_kept_from_its_first_record_is_copied_as_bytes(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    produce(log, clock, [(b"a", b"1"), (b"b", b"1"), (b"c", b"1"), (b"d", b"1")])
    produce(log, clock, [(b"c", b"2"), (b"d", b"2")])
    fill_closed_segments(log, clock)
    original = log.read(0, 1 << 20, log.log_end_offset)
    cleaner.clean_once(clock.now_ms())
    header, kept = batches(log)[0]
    assert (header.base_offset, header.record_count, [r.key for r in kept]) == (0, 2, [b"a", b"b"])
    # The two records are the original batch's bytes, only the batch header is new.
    cleaned = log.read(0, 1 << 20, log.log_end_offset)
    first = read_batch_header(original, 0)
    record_bytes = cleaned[61 : header.size]
    assert original[61 : first.size].startswith(record_bytes)


def test_batch_whose_records_all_go_is_dropped(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    produce(log, clock, [(b"a", b"1"), (b"b", b"1"), (None, b"no key")], codec=LZ4)
    produce(log, clock, [(b"a", b"2"), (b"b", b"2")])
    fill_closed_segments(log, clock)
    cleaner.clean_once(clock.now_ms())
    assert [h.base_offset for h, _ in batches(log)][:1] == [3]
    assert cleaner.stats.records_removed == 3


def test_tombstone_in_a_partly_kept_batch_survives_then_goes(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock, compact_config(delete_retention_ms=DAY_MS))
    produce(log, clock, [(b"a", b"1"), (b"gone", None), (b"b", None), (b"c", b"1")], codec=GZIP)
    produce(log, clock, [(b"a", b"2"), (b"gone", b"back")])
    fill_closed_segments(log, clock)
    cleaner.clean_once(clock.now_ms())
    assert [(r.offset, r.key, r.value) for r in records(log)][:4] == [
        (2, b"b", None), (3, b"c", b"1"), (4, b"a", b"2"), (5, b"gone", b"back"),
    ]
    clock.advance(DAY_MS)
    assert cleaner.clean_once(clock.now_ms()) == 1  # due: the kept tombstone set a deadline
    assert [(r.offset, r.key) for r in records(log)][:3] == [(3, b"c"), (4, b"a"), (5, b"gone")]


def test_control_batches_stay_and_aborted_batches_go(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    produce(log, clock, [(b"t", b"committed")], producer_id=5, producer_epoch=0, base_sequence=0, transactional=True)
    marker = bytearray(encode_marker_batch(5, 0, True, 1, clock.now_ms()))
    log.append(marker, validate_batches(marker), 0)
    produce(log, clock, [(b"t", b"newer")])
    fill_closed_segments(log, clock)
    cleaner.clean_once(clock.now_ms())
    found = batches(log)
    assert found[0][0].is_control and found[0][0].base_offset == 1
    assert [(r.offset, r.key, r.value) for r in records(log)][1] == (2, b"t", b"newer")


def test_regular_batches_are_never_decoded(tmp_path, clock, monkeypatch):
    manager, log, cleaner = setup(tmp_path, clock, compact_config(segment_bytes=4000))
    rng = random.Random(3)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cleaner decoded a regular batch into Record objects")

    for _ in range(2):  # the second pass recopies clean segments too
        for n in range(60):
            pairs = [(rng.choice([None, b"a", b"b", b"k" * 20, b"long" * 30]), rng.choice([None, b"v" * rng.randint(0, 90)]))
                     for _ in range(rng.randint(1, 80))]
            produce(log, clock, pairs, codec=CODECS[n % len(CODECS)])
        before = records(log)
        monkeypatch.setattr(cleaner_module, "decode_records", no_decoding)
        assert cleaner.clean_once(clock.now_ms()) == 1
        monkeypatch.undo()
        assert records(log) == model_survivors(before, log.active_segment.base_offset)


def irregular_batch(base_timestamp, pairs_with_deltas):
    """A batch whose records carry the given offset deltas (producers write 0..n-1; a client
    could write anything, and validation checks only recordCount == lastOffsetDelta + 1)."""
    body = bytearray()
    for delta, (key, value) in pairs_with_deltas:
        record = bytearray(b"\x00")
        write_varint(record, 0)
        write_varint(record, delta)
        write_varint(record, len(key))
        record += key
        write_varint(record, len(value))
        record += value
        write_varint(record, 0)
        write_varint(body, len(record))
        body += record
    count = len(pairs_with_deltas)
    return bytearray(assemble_batch(
        bytes(body), base_offset=0, record_count=count, attributes=NONE, base_timestamp=base_timestamp,
        max_timestamp=base_timestamp, producer_id=-1, producer_epoch=-1, base_sequence=-1, partition_leader_epoch=-1,
    ))


def test_batch_with_offset_deltas_not_0_to_n_is_settled_by_its_decoded_offsets(tmp_path, clock):
    manager, log, cleaner = setup(tmp_path, clock)
    buffer = irregular_batch(clock.now_ms(), [(0, (b"x", b"1")), (2, (b"y", b"1")), (1, (b"z", b"1"))])
    log.append(buffer, validate_batches(buffer), 0)
    produce(log, clock, [(b"y", b"2")])
    fill_closed_segments(log, clock)
    cleaner.clean_once(clock.now_ms())
    assert [(r.offset, r.key) for r in records(log)][:3] == [(0, b"x"), (1, b"z"), (3, b"y")]


def test_corrupt_record_marks_the_partition_uncleanable_and_changes_nothing(tmp_path, clock, caplog):
    manager, log, cleaner = setup(tmp_path, clock)
    good = encode_batch([(clock.now_ms(), b"k", b"value"), (clock.now_ms(), b"k", b"value")])
    body = bytearray(good[61:])
    body[4] = 2 * 9  # the first record's key length: 9 bytes, more than its 9-byte record holds
    buffer = bytearray(assemble_batch(
        bytes(body), base_offset=0, record_count=2, attributes=NONE, base_timestamp=clock.now_ms(),
        max_timestamp=clock.now_ms(), producer_id=-1, producer_epoch=-1, base_sequence=-1, partition_leader_epoch=-1,
    ))
    log.append(buffer, validate_batches(buffer), 0)
    fill_closed_segments(log, clock)
    before = log.read(0, 1 << 20, log.log_end_offset)
    with caplog.at_level(logging.ERROR):
        assert cleaner.clean_once(clock.now_ms()) == 0
    assert "cannot clean compacted-0" in caplog.text and "runs past" in caplog.text
    assert "not cleaning it again" in caplog.text and "Traceback" not in caplog.text  # one line, as for bad input
    assert log.read(0, 1 << 20, log.log_end_offset) == before
    assert not any(path.name.endswith(".cleaned") for path in log.directory.iterdir())
    assert cleaner.uncleanable() == {log.directory.parent: (1, log.size_bytes - log.segments[-1].size)}

    # Marked uncleanable (Kafka's KIP-346): later passes skip it quietly instead of failing again.
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert cleaner.clean_once(clock.now_ms()) == 0
    assert caplog.text == ""

    # Deleted and created again, the partition is a new log, cleaned as any other.
    manager.delete_log(TP)
    log = manager.create_log(TP, compact_config())
    produce(log, clock, [(b"k", b"old")])
    produce(log, clock, [(b"k", b"new")])
    fill_closed_segments(log, clock)
    assert cleaner.clean_once(clock.now_ms()) == 1
    assert cleaner.uncleanable() == {}
    assert latest_view(log)[b"k"] != b"old"


@pytest.mark.parametrize("seed", range(6))
def test_cleaning_matches_a_model_over_passes(tmp_path, clock, monkeypatch, seed):
    """Random batches (every codec, up to 300 records, key-less records, tombstones, headers,
    LogAppendTime) over several passes with appends in between: after each pass, the cleaned part
    holds exactly the latest record per key, byte-exact, and the rest is untouched."""
    rng = random.Random(seed)
    if seed % 2:
        monkeypatch.setattr(cleaner_module, "_READ_CHUNK_BYTES", rng.choice([100, 5000]))  # batches cross chunks
    config = compact_config(segment_bytes=rng.choice([3000, 20_000]), delete_retention_ms=10 * DAY_MS)
    manager, log, cleaner = setup(tmp_path, clock, config)
    keys = [None] + [f"key-{i}".encode() * rng.choice([1, 4]) for i in range(rng.choice([5, 60]))]
    for _ in range(4):
        for _ in range(rng.randint(10, 40)):
            count = rng.choice([1, 3, 70, 300])
            pairs = [(rng.choice(keys), None if rng.random() < 0.1 else rng.randbytes(rng.choice([0, 5, 80, 80, 9000])))
                     for _ in range(count if count < 300 else 30)]
            records_in = [(clock.now_ms() + rng.randint(-500, 500), key, value, (("h", b"1"),) if rng.random() < 0.2 else ())
                          for key, value in pairs]
            buffer = bytearray(encode_batch(
                records_in, codec=rng.choice(CODECS), timestamp_type=int(rng.random() < 0.2),
                producer_id=rng.choice([-1, 77]), producer_epoch=1, base_sequence=rng.randint(0, 10),
            ))
            log.append(buffer, validate_batches(buffer), 2)
            clock.advance(rng.randint(0, 100))
        log.roll()
        before = records(log)
        cleaner.clean_once(clock.now_ms())
        assert records(log) == model_survivors(before, log.active_segment.base_offset)
