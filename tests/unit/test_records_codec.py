"""encode_batch / decode_records round trips for every codec."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.protocol import compression
from odradek.protocol.errors import KafkaError
from odradek.protocol.records import Record, check_batch, decode_records, encode_batch, read_batch_header

_records = st.lists(
    st.builds(
        Record,
        offset=st.just(0),
        timestamp=st.integers(0, 2**41),
        key=st.none() | st.binary(max_size=40),
        value=st.none() | st.binary(max_size=300),
        headers=st.lists(st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=20)), max_size=3).map(tuple),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(records=_records, codec=st.sampled_from(compression.CODECS), base_offset=st.integers(0, 2**40))
def test_encode_decode_round_trip_every_codec(records, codec, base_offset):
    batch = encode_batch(records, base_offset=base_offset, codec=codec)
    header = read_batch_header(batch, 0)
    assert check_batch(batch, header, len(batch)) is None
    assert header.compression == codec
    assert header.record_count == len(records)
    assert header.max_timestamp == max(r.timestamp for r in records)
    decoded = decode_records(batch, header)
    expected = [r._replace(offset=base_offset + i) for i, r in enumerate(records)]
    assert decoded == expected


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=100_000), codec=st.sampled_from(compression.CODECS))
def test_compression_round_trip(data, codec):
    assert compression.decompress(codec, compression.compress(codec, data)) == data


def test_snappy_accepts_raw_and_xerial():
    import cramjam

    data = b"kafka" * 20000
    raw = bytes(cramjam.snappy.compress_raw(data))
    assert compression.decompress(compression.SNAPPY, raw) == data
    framed = compression.compress(compression.SNAPPY, data)
    assert framed.startswith(compression.XERIAL_MAGIC)
    assert compression.decompress(compression.SNAPPY, framed) == data


def test_decompress_garbage_is_corrupt_message():
    with pytest.raises(KafkaError):
        compression.decompress(compression.ZSTD, b"not zstd at all")


def test_lz4_batches_of_any_ratio_and_size_decompress_whole():
    """LZ4 decompresses into a reused buffer: a batch that compresses 1,000-fold (more than the
    buffer was sized for), one past the buffer's 8 MiB cap, a small one after them, and corrupt
    data all get the right answer."""
    for data in (b"a" * 5_000_000, bytes(range(256)) * 40_000, b"x" * 10_000_000, b"small batch" * 30):
        framed = compression.compress(compression.LZ4, data)
        assert compression.decompress(compression.LZ4, memoryview(framed)) == data
    corrupt = bytearray(compression.compress(compression.LZ4, b"records " * 5000))
    corrupt[20:40] = b"x" * 20
    with pytest.raises(KafkaError, match="lz4 data does not decode"):
        compression.decompress(compression.LZ4, bytes(corrupt))


def test_log_append_time_records_take_the_batch_max_timestamp():
    batch = encode_batch([(5, b"k", b"v"), (9, None, b"w")], timestamp_type=1)
    header = read_batch_header(batch, 0)
    assert header.is_log_append_time
    assert [r.timestamp for r in decode_records(batch, header)] == [9, 9]
