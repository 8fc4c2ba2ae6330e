"""Idempotent-producer sequence rules, batch by batch, as Kafka applies them."""

from __future__ import annotations

import pytest

from odradek.log.producer_state import ProducerStateManager
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import Record, encode_batch, read_batch_header


def header(producer_id=7, epoch=0, sequence=0, count=1):
    records = [Record(i, 1000, None, b"v") for i in range(count)]
    return read_batch_header(encode_batch(records, producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence))


def appended(state: ProducerStateManager, h, base_offset: int):
    assert state.check(h) is None
    state.update(h, base_offset)


def test_sequence_that_follows_is_accepted() -> None:
    state = ProducerStateManager()
    appended(state, header(sequence=0, count=3), 0)
    appended(state, header(sequence=3, count=2), 3)


def test_duplicate_of_recent_batch_returns_original_offsets() -> None:
    state = ProducerStateManager()
    appended(state, header(sequence=0, count=3), 10)
    appended(state, header(sequence=3, count=2), 13)
    duplicate = state.check(header(sequence=0, count=3))
    assert (duplicate.base_offset, duplicate.last_offset) == (10, 12)


def test_gap_in_sequence_is_out_of_order() -> None:
    state = ProducerStateManager()
    appended(state, header(sequence=0, count=3), 0)
    with pytest.raises(KafkaError) as error:
        state.check(header(sequence=5))
    assert error.value.code == ErrorCode.out_of_order_sequence_number


def test_unknown_producer_not_starting_at_zero() -> None:
    with pytest.raises(KafkaError) as error:
        ProducerStateManager().check(header(sequence=4))
    assert error.value.code == ErrorCode.unknown_producer_id


def test_older_epoch_is_fenced() -> None:
    state = ProducerStateManager()
    appended(state, header(epoch=2), 0)
    with pytest.raises(KafkaError) as error:
        state.check(header(epoch=1, sequence=1))
    assert error.value.code == ErrorCode.invalid_producer_epoch


def test_new_epoch_must_start_at_zero() -> None:
    state = ProducerStateManager()
    appended(state, header(epoch=0), 0)
    with pytest.raises(KafkaError) as error:
        state.check(header(epoch=1, sequence=1))
    assert error.value.code == ErrorCode.out_of_order_sequence_number
    appended(state, header(epoch=1, sequence=0), 1)


def test_sequence_wraps_at_int32() -> None:
    state = ProducerStateManager()
    appended(state, header(sequence=0), 0)
    state._producers[7].batches[-1].last_sequence = 2**31 - 1
    appended(state, header(sequence=0, count=1), 1)


def test_state_is_rebuilt_from_batch_headers() -> None:
    state = ProducerStateManager()
    h = header(sequence=0, count=2)
    state.replay([(h._replace(base_offset=40), None)])
    assert state.check(h).base_offset == 40
