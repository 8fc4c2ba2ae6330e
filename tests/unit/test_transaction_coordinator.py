"""The transaction coordinator's state machine on the fake clock: producer ids and epochs, fencing,
the two-phase end with markers, timeouts, expiry, and reloading a partition mid-transaction."""

from __future__ import annotations

import asyncio

import pytest

from odradek.clock import FakeClock
from odradek.coordinator.state_log import CoordinatorLog
from odradek.coordinator.transaction_coordinator import TransactionConfig, TransactionCoordinator, TxnError
from odradek.coordinator.transaction_records import TxnState
from odradek.coordinator.txn_channel import Leader, TransactionChannel
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition
from test_group_coordinator import MemoryLog as _MemoryLog

PARTITIONS = 3


def MemoryLog():  # noqa: N802 - the group coordinator tests' log, with this topic's partitions
    return _MemoryLog(PARTITIONS)
OUT = TopicPartition("out", 0)
OFFSETS = TopicPartition("__consumer_offsets", 1)


class Markers:
    """Where the markers went: (partition, producer id, epoch, committed, coordinator epoch)."""

    def __init__(self) -> None:
        self.written: list[tuple] = []
        self.refuse: set[TopicPartition] = set()

    async def write_local(self, tp, producer_id, epoch, committed, coordinator_epoch) -> None:
        if tp in self.refuse:
            raise KafkaError(ErrorCode.not_leader_or_follower, "moving")
        self.written.append((tp, producer_id, epoch, committed, coordinator_epoch))


def coordinator(clock, log: MemoryLog, markers: Markers, **config) -> TransactionCoordinator:
    store = CoordinatorLog("__transaction_state", PARTITIONS, clock, ensure_topic=lambda: PARTITIONS,
                           append=log.append, read_batches=log.read, topic_exists=lambda: PARTITIONS)
    ids = iter(range(1000, 2000))

    async def next_producer_id() -> int:
        return next(ids)

    writer = TransactionChannel(0, leader_of=lambda tp: Leader(0, "", 0), topic_exists=lambda topic: True,
                          write_local=markers.write_local)
    return TransactionCoordinator(
        store, TransactionConfig(**config), clock, next_producer_id=next_producer_id,
        partition_exists=lambda tp: tp.topic in ("out", "__consumer_offsets"),
        offsets_partition_for=lambda group: OFFSETS, channel=writer,
    )


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def clock():
    return FakeClock()


def test_init_gives_an_id_and_every_init_bumps_the_epoch(clock):
    async def scenario():
        coord = coordinator(clock, MemoryLog(), Markers())
        coord.load()
        first = await coord.init_producer_id("app", 60_000)
        second = await coord.init_producer_id("app", 60_000)
        other = await coord.init_producer_id("other", 60_000)
        return first, second, other

    first, second, other = run(scenario())
    assert first == (1000, 0) and second == (1000, 1)
    assert other[0] != 1000


def test_timeout_above_the_maximum_is_refused(clock):
    async def scenario():
        coord = coordinator(clock, MemoryLog(), Markers(), max_timeout_ms=60_000)
        coord.load()
        await coord.init_producer_id("app", 60_001)

    with pytest.raises(TxnError) as refused:
        run(scenario())
    assert refused.value.code == ErrorCode.invalid_transaction_timeout


def test_commit_writes_markers_to_every_partition_then_completes(clock):
    markers = Markers()

    async def scenario():
        coord = coordinator(clock, MemoryLog(), markers)
        coord.load()
        pid, epoch = await coord.init_producer_id("app", 60_000)
        assert (await coord.add_partitions("app", pid, epoch, [OUT]))[OUT] == ErrorCode.none
        await coord.add_offsets("app", pid, epoch, "group")
        assert coord.describe("app").state is TxnState.ONGOING
        await coord.end_transaction("app", pid, epoch, True)
        return coord.describe("app")

    meta = run(scenario())
    assert meta.state is TxnState.COMPLETE_COMMIT and not meta.partitions
    assert sorted(markers.written) == sorted([(OUT, 1000, 0, True, 0), (OFFSETS, 1000, 0, True, 0)])


def test_an_older_producer_is_fenced_and_its_open_transaction_aborted(clock):
    markers = Markers()

    async def scenario():
        coord = coordinator(clock, MemoryLog(), markers)
        coord.load()
        pid, old_epoch = await coord.init_producer_id("app", 60_000)
        await coord.add_partitions("app", pid, old_epoch, [OUT])
        with pytest.raises(TxnError) as busy:
            await coord.init_producer_id("app", 60_000)  # the new producer: the old transaction is aborted first
        assert busy.value.code == ErrorCode.concurrent_transactions
        while coord.describe("app").state is not TxnState.COMPLETE_ABORT:
            await asyncio.sleep(0)
        new = await coord.init_producer_id("app", 60_000)
        errors = await coord.add_partitions("app", pid, old_epoch, [OUT])
        return new, errors

    (pid, epoch), errors = run(scenario())
    assert epoch == 2, "one bump to fence and abort, one for the new producer"
    assert markers.written == [(OUT, pid, 1, False, 0)]
    assert errors[OUT] == ErrorCode.producer_fenced


def test_end_transaction_rules(clock):
    async def scenario():
        coord = coordinator(clock, MemoryLog(), Markers())
        coord.load()
        pid, epoch = await coord.init_producer_id("app", 60_000)
        codes = []
        for commit in (True, False):
            try:
                await coord.end_transaction("app", pid, epoch, commit)
                codes.append(ErrorCode.none)
            except TxnError as error:
                codes.append(error.code)
        await coord.add_partitions("app", pid, epoch, [OUT])
        await coord.end_transaction("app", pid, epoch, True)
        await coord.end_transaction("app", pid, epoch, True)  # a retry after success
        try:
            await coord.end_transaction("app", pid, epoch, False)
        except TxnError as error:
            codes.append(error.code)
        return codes

    assert run(scenario()) == [ErrorCode.invalid_txn_state, ErrorCode.invalid_txn_state, ErrorCode.invalid_txn_state]


def test_a_transaction_open_past_its_timeout_is_aborted_with_a_bumped_epoch(clock):
    markers = Markers()

    async def scenario():
        coord = coordinator(clock, MemoryLog(), markers)
        coord.load()
        pid, epoch = await coord.init_producer_id("app", 10_000)
        await coord.add_partitions("app", pid, epoch, [OUT])
        clock.advance(5_000)
        assert await coord.abort_timed_out() == 0
        clock.advance(6_000)
        assert await coord.abort_timed_out() == 1
        while coord.describe("app").state is not TxnState.COMPLETE_ABORT:
            await asyncio.sleep(0)
        with pytest.raises(TxnError) as fenced:
            await coord.end_transaction("app", pid, epoch, True)
        return fenced.value.code

    assert run(scenario()) == ErrorCode.producer_fenced
    assert markers.written == [(OUT, 1000, 1, False, 0)]


def test_markers_are_retried_until_the_partition_takes_them(clock):
    markers = Markers()
    markers.refuse.add(OUT)

    async def scenario():
        coord = coordinator(clock, MemoryLog(), markers)
        coord.load()
        pid, epoch = await coord.init_producer_id("app", 60_000)
        await coord.add_partitions("app", pid, epoch, [OUT])
        task = asyncio.create_task(coord.end_transaction("app", pid, epoch, True))
        await asyncio.sleep(0.25)
        assert coord.describe("app").state is TxnState.PREPARE_COMMIT
        markers.refuse.clear()
        await task
        while coord.describe("app").state is not TxnState.COMPLETE_COMMIT:
            await asyncio.sleep(0.01)

    run(scenario())
    assert markers.written == [(OUT, 1000, 0, True, 0)]


def test_a_reloaded_partition_finishes_a_prepared_commit(clock):
    log = MemoryLog()
    markers = Markers()
    markers.refuse.add(OUT)

    async def before_the_crash():
        coord = coordinator(clock, log, markers)
        coord.load()
        pid, epoch = await coord.init_producer_id("app", 60_000)
        await coord.add_partitions("app", pid, epoch, [OUT])
        asyncio.create_task(coord.end_transaction("app", pid, epoch, True))
        await asyncio.sleep(0.05)
        coord.shutdown()

    async def after():
        markers.refuse.clear()
        coord = coordinator(clock, log, markers)
        for partition in range(PARTITIONS):
            coord.on_leadership_change(partition, True, leader_epoch=4)
        await coord.wait_until_loaded()
        while coord.describe("app").state is not TxnState.COMPLETE_COMMIT:
            await asyncio.sleep(0.01)

    run(before_the_crash())
    assert markers.written == []
    run(after())
    assert markers.written == [(OUT, 1000, 0, True, 4)], "the new coordinator epoch is on the marker"


def test_idle_transactional_ids_expire(clock):
    async def scenario():
        coord = coordinator(clock, MemoryLog(), Markers(), id_expiration_ms=1_000)
        coord.load()
        await coord.init_producer_id("app", 60_000)
        clock.advance(1_000)
        removed = await coord.expire_transactional_ids()
        with pytest.raises(TxnError) as gone:
            coord.describe("app")
        return removed, gone.value.code

    assert run(scenario()) == (1, ErrorCode.transactional_id_not_found)


def test_a_failed_write_leaves_the_state_unchanged(clock):
    log = MemoryLog()

    async def scenario():
        coord = coordinator(clock, log, Markers())
        coord.load()
        pid, epoch = await coord.init_producer_id("app", 60_000)
        log.fail = ErrorCode.not_enough_replicas
        errors = await coord.add_partitions("app", pid, epoch, [OUT])
        return errors[OUT], coord.describe("app").state

    assert run(scenario()) == (ErrorCode.coordinator_not_available, TxnState.EMPTY)


def test_transaction_version_2_bumps_the_epoch_at_every_end(clock):
    """KIP-890 part 2 (EndTxn v5): each commit or abort moves the producer to the next epoch, the
    markers carry it (so late writes of the ended transaction are fenced), a retried EndTxn with
    the old epoch is answered with the new one, and an abort needs no open transaction."""
    markers = Markers()

    async def scenario():
        coord = coordinator(clock, MemoryLog(), markers)
        coord.load()
        pid, epoch = await coord.init_producer_id("app", 60_000)
        await coord.add_partitions("app", pid, epoch, [OUT])
        after_commit = await coord.end_transaction("app", pid, epoch, True, bump_epoch=True)
        retried = await coord.end_transaction("app", pid, epoch, True, bump_epoch=True)
        with pytest.raises(TxnError) as stale:
            await coord.end_transaction("app", pid, epoch - 1, True, bump_epoch=True)
        errors = await coord.add_partitions("app", pid, epoch, [OUT])  # the old epoch is fenced
        await coord.add_partitions("app", pid, after_commit[1], [OUT])
        after_abort = await coord.end_transaction("app", pid, after_commit[1], False, bump_epoch=True)
        empty_abort = await coord.end_transaction("app", pid, after_abort[1], False, bump_epoch=True)
        return after_commit, retried, stale.value.code, errors[OUT], after_abort, empty_abort

    after_commit, retried, stale, fenced, after_abort, empty_abort = run(scenario())
    assert after_commit == (1000, 1) and retried == (1000, 1)
    assert stale == ErrorCode.producer_fenced and fenced == ErrorCode.producer_fenced
    assert after_abort == (1000, 2) and empty_abort == (1000, 3)
    assert markers.written == [(OUT, 1000, 1, True, 0), (OUT, 1000, 2, False, 0)]
