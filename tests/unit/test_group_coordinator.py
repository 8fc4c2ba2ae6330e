"""The group coordinator on a fake clock: no broker, no sockets, no sleeping.

The store is an in-memory list of (partition, key, value) records shaped like
`__consumer_offsets`, which a test can make refuse writes; time moves only with clock.advance(),
which fires the coordinator's timers (session, rebalance, initial delay) at their due times.
"""

from __future__ import annotations

import asyncio
import uuid


from odradek.clock import FakeClock
from odradek.coordinator.group_coordinator import GroupConfig, GroupCoordinator
from odradek.coordinator.group_records import partition_for_group
from odradek.coordinator.state_log import CoordinatorLog
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.records import BATCH_HEADER_SIZE, decode_records, read_batch_header
from odradek.protocol.topic_partition import TopicPartition

PARTITIONS = 4
SESSION_MS = 10_000
REBALANCE_MS = 30_000
TOPIC = "events"
TOPIC_ID = uuid.uuid5(uuid.NAMESPACE_URL, TOPIC)


class MemoryLog:
    """A coordinator's topic as lists of decoded batches per partition; `fail` makes writes refuse."""

    def __init__(self, partitions: int = PARTITIONS) -> None:
        self.batches: dict[int, list] = {p: [] for p in range(partitions)}
        self.fail: ErrorCode | None = None

    def append(self, tp: TopicPartition, batch: bytes):
        if self.fail is not None:
            raise KafkaError(self.fail, "the log refused the write")
        assert len(batch) >= BATCH_HEADER_SIZE
        header = read_batch_header(batch, 0)
        self.batches[tp.partition].append((header, decode_records(batch, header)))

        class Written:
            last_offset = sum(len(records) for _, records in self.batches[tp.partition]) - 1

        return Written()

    def read(self, tp: TopicPartition):
        return list(self.batches[tp.partition])


def coordinator(clock: FakeClock, log: MemoryLog, **config) -> GroupCoordinator:
    store = CoordinatorLog(
        "__consumer_offsets", PARTITIONS, clock,
        ensure_topic=lambda: PARTITIONS,
        append=log.append,
        read_batches=log.read,
        topic_exists=lambda: PARTITIONS,
    )
    settings = {"initial_rebalance_delay_ms": 0, "min_session_timeout_ms": 1000, **config}
    return GroupCoordinator(
        store, GroupConfig(**settings), clock,
        partition_exists=lambda topic, partition: topic == TOPIC and partition < 6,
        partition_counts=lambda topics: {t: 6 for t in topics if t == TOPIC},
        topic_id_of=lambda name: TOPIC_ID if name == TOPIC else None,
        topic_name_of=lambda topic_id: TOPIC if topic_id == TOPIC_ID else None,
    )


def loaded(clock: FakeClock, log: MemoryLog, **config) -> GroupCoordinator:
    groups = coordinator(clock, log, **config)
    for partition in range(PARTITIONS):
        groups.on_leadership_change(partition, True, is_empty=True)
    return groups


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 10))


async def join(groups, group="g", member_id="", instance=None, protocols=(("range", b"meta"),), skip=False):
    return await groups.join_group(
        group, member_id, instance, "client", "/127.0.0.1", SESSION_MS, REBALANCE_MS, "consumer",
        list(protocols), require_known_member_id=False, supports_skip_assignment=skip,
    )


async def stable_group(groups, group="g", instance=None):
    joined = await join(groups, group, instance=instance)
    assert joined.error == ErrorCode.none
    synced = await groups.sync_group(
        group, joined.generation_id, joined.member_id, instance, "consumer", "range", {joined.member_id: b"assignment"}
    )
    assert synced.error == ErrorCode.none and synced.assignment == b"assignment"
    return joined


def test_one_member_forms_a_generation_and_syncs():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        joined = await stable_group(groups)
        assert (joined.generation_id, joined.leader_id) == (1, joined.member_id)
        assert groups.describe_group("g").state == "Stable"
        assert groups.heartbeat("g", 1, joined.member_id, None) == ErrorCode.none
        assert groups.heartbeat("g", 0, joined.member_id, None) == ErrorCode.illegal_generation

    run(scenario())


def test_member_that_stops_heartbeating_is_removed_after_its_session_timeout():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        joined = await stable_group(groups)
        clock.advance(SESSION_MS - 1)
        assert groups.heartbeat("g", 1, joined.member_id, None) == ErrorCode.none  # restarts the session
        clock.advance(SESSION_MS - 1)
        assert groups.describe_group("g").state == "Stable"
        clock.advance(2)
        assert groups.describe_group("g").state == "Empty"
        assert groups.heartbeat("g", 1, joined.member_id, None) == ErrorCode.unknown_member_id

    run(scenario())


def test_rebalance_timeout_removes_a_member_that_does_not_rejoin():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        first = await stable_group(groups)
        second_join = asyncio.ensure_future(join(groups))
        await asyncio.sleep(0)
        assert groups.describe_group("g").state == "PreparingRebalance"
        assert groups.heartbeat("g", 1, first.member_id, None) == ErrorCode.rebalance_in_progress
        clock.advance(REBALANCE_MS)  # the first member never rejoins
        second = await second_join
        assert second.error == ErrorCode.none and second.generation_id == 2
        assert [m[0] for m in second.members] == [second.member_id]

    run(scenario())


def test_initial_delay_waits_for_more_members_on_the_clock():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log, initial_rebalance_delay_ms=3000)
        first = asyncio.ensure_future(join(groups))
        await asyncio.sleep(0)
        clock.advance(2000)
        second = asyncio.ensure_future(join(groups))
        await asyncio.sleep(0)
        clock.advance(1000)  # the delay ends, but a member arrived during it: Kafka waits once more
        await asyncio.sleep(0)
        assert not first.done()
        clock.advance(3000)
        a, b = await first, await second
        assert a.generation_id == b.generation_id == 1
        assert len(a.members or b.members) == 2

    run(scenario())


def test_restarted_static_member_keeps_its_place_and_fences_the_old_one():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        old = await stable_group(groups, instance="i-1")
        again = await join(groups, instance="i-1", skip=True)  # JoinGroup v9+: KIP-814
        assert again.error == ErrorCode.none and again.generation_id == old.generation_id
        assert again.member_id != old.member_id and again.skip_assignment
        assert groups.heartbeat("g", 1, old.member_id, "i-1") == ErrorCode.fenced_instance_id
        assert groups.describe_group("g").state == "Stable"

    run(scenario())


def test_committed_offsets_survive_unload_and_reload_of_their_partition():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        partition = partition_for_group("g", PARTITIONS)
        errors = await groups.commit_offsets("g", -1, "", None, [(TOPIC, 0, 42, -1, "m")])
        assert errors == [ErrorCode.none]

        groups.on_leadership_change(partition, False)
        assert groups.coordinator_error("g") == ErrorCode.not_coordinator
        assert "g" not in groups.offsets
        assert await groups.commit_offsets("g", -1, "", None, [(TOPIC, 0, 50, -1, "")]) == [ErrorCode.not_coordinator]

        groups.on_leadership_change(partition, True)
        assert groups.coordinator_error("g") == ErrorCode.coordinator_load_in_progress
        await groups.wait_until_loaded()
        assert groups.coordinator_error("g") is None
        [(_, _, committed)] = groups.fetch_offsets("g", [(TOPIC, [0])])
        assert (committed.offset, committed.metadata) == (42, "m")

    run(scenario())


def test_unload_answers_parked_joins_not_coordinator():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        await stable_group(groups)
        parked = asyncio.ensure_future(join(groups))
        await asyncio.sleep(0)
        groups.on_leadership_change(partition_for_group("g", PARTITIONS), False)
        assert (await parked).error == ErrorCode.not_coordinator
        assert clock.pending_timers == 0, "an unloaded group leaves no timer behind"

    run(scenario())


def test_failed_offset_write_changes_nothing():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        assert await groups.commit_offsets("g", -1, "", None, [(TOPIC, 0, 10, -1, "")]) == [ErrorCode.none]
        log.fail = ErrorCode.not_leader_or_follower
        assert await groups.commit_offsets("g", -1, "", None, [(TOPIC, 0, 99, -1, "")]) == [ErrorCode.not_coordinator]
        [(_, _, committed)] = groups.fetch_offsets("g", [(TOPIC, [0])])
        assert committed.offset == 10

    run(scenario())


async def consumer_heartbeat(groups, member_id="", epoch=0, owned=None, topics=(TOPIC,)):
    return await groups.consumer_group_heartbeat(
        group_id="cg", member_id=member_id, member_epoch=epoch, instance_id=None, rack_id=None,
        rebalance_timeout_ms=REBALANCE_MS, subscribed_topic_names=list(topics) if epoch == 0 else None,
        server_assignor=None, owned=owned, client_id="c", client_host="/h", client_chooses_member_id=False,
    )


def test_kip848_members_reconcile_to_a_shared_assignment():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        first = await consumer_heartbeat(groups)
        assert first.error == ErrorCode.none and first.assignment == {TOPIC: set(range(6))}
        second = await consumer_heartbeat(groups)
        assert second.assignment in (None, {})  # must wait until the first releases partitions
        # the first member learns to give up half, confirms, and the second then gets them
        revoked = await consumer_heartbeat(groups, first.member_id, first.member_epoch, owned={TOPIC: set(range(6))})
        kept = revoked.assignment[TOPIC]
        assert len(kept) == 3
        await consumer_heartbeat(groups, first.member_id, revoked.member_epoch, owned={TOPIC: kept})
        later = await consumer_heartbeat(groups, second.member_id, second.member_epoch, owned={})
        assert later.assignment == {TOPIC: set(range(6)) - kept}
        assert groups.describe_consumer_group("cg").state in ("Stable", "Reconciling")

    run(scenario())


def test_kip848_heartbeat_whose_write_fails_leaves_the_group_as_it_was():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        first = await consumer_heartbeat(groups)
        group = groups.describe_consumer_group("cg")
        epoch_before, members_before = group.group_epoch, set(group.members)
        log.fail = ErrorCode.not_leader_or_follower
        refused = await consumer_heartbeat(groups)
        assert refused.error == ErrorCode.not_coordinator
        group = groups.describe_consumer_group("cg")
        assert (group.group_epoch, set(group.members)) == (epoch_before, members_before)
        log.fail = None
        assert (await consumer_heartbeat(groups, first.member_id, first.member_epoch, owned={TOPIC: set(range(6))})).error == ErrorCode.none

    run(scenario())


def test_kip848_member_expires_on_the_clock_and_the_expiry_is_stored():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log, consumer_session_timeout_ms=45_000)
        await consumer_heartbeat(groups)
        clock.advance(45_001)
        await asyncio.sleep(0)  # the expiry stores itself in a task
        await asyncio.sleep(0)
        assert groups.describe_consumer_group("cg").members == {}
        reloaded = loaded(clock, log)
        reloaded.unload_partition(partition_for_group("cg", PARTITIONS))
        reloaded.on_leadership_change(partition_for_group("cg", PARTITIONS), True)
        await reloaded.wait_until_loaded()
        assert reloaded.describe_consumer_group("cg").members == {}

    run(scenario())


def test_online_upgrade_hosts_the_classic_member_and_downgrade_returns_the_group():
    """KIP-848 migration: a consumer-protocol member joining a classic group converts it; the
    classic member is told to rejoin, gets its half from the server-side assignor, survives a
    reload of the offsets partition, and the group turns classic again when the other leaves."""
    from odradek.client.consumer_protocol import decode_assignment, encode_assignment, encode_subscription
    from odradek.protocol.topic_partition import TopicPartition as TP

    subscription = encode_subscription([TOPIC])
    everything = encode_assignment([TP(TOPIC, p) for p in range(6)])

    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        joined = await join(groups, "cg", protocols=(("range", subscription),))
        await groups.sync_group("cg", joined.generation_id, joined.member_id, None, "consumer", "range",
                                {joined.member_id: everything})
        modern = await consumer_heartbeat(groups, "", 0)
        assert modern.error == ErrorCode.none and not modern.assignment, "the classic member still owns everything"
        assert groups.describe_consumer_group("cg") is not None and "cg" not in groups.groups
        assert groups.heartbeat("cg", joined.generation_id, joined.member_id, None) == ErrorCode.rebalance_in_progress

        rejoined = await join(groups, "cg", joined.member_id, protocols=(("range", subscription),))
        assert (rejoined.error, rejoined.leader_id, rejoined.members) == (ErrorCode.none, "", [])
        synced = await groups.sync_group("cg", rejoined.generation_id, joined.member_id, None, "consumer", "range", {})
        classic_half = {tp.partition for tp in decode_assignment(synced.assignment)}
        assert len(classic_half) == 3
        assert groups.heartbeat("cg", rejoined.generation_id, joined.member_id, None) == ErrorCode.none
        modern = await consumer_heartbeat(groups, modern.member_id, modern.member_epoch)
        assert modern.assignment == {TOPIC: set(range(6)) - classic_half}

        reloaded = coordinator(clock, log)
        reloaded.load()
        hosted = reloaded.describe_consumer_group("cg").members[joined.member_id]
        assert hosted.classic is not None and hosted.classic.session_timeout_ms == SESSION_MS

        left = await consumer_heartbeat(groups, modern.member_id, -1)
        assert left.error == ErrorCode.none
        assert "cg" in groups.groups and groups.describe_consumer_group("cg") is None
        assert groups.heartbeat("cg", rejoined.generation_id, joined.member_id, None) == ErrorCode.rebalance_in_progress

    run(scenario())


def slow_coordinator(clock: FakeClock, log: MemoryLog):
    """A coordinator whose writes replicate only when the test says: (coordinator, gate); set
    gate["error"] to make the replication fail, then gate["event"].set()."""
    gate = {"event": asyncio.Event(), "error": None}

    async def wait_committed(tp, offset):
        await gate["event"].wait()
        if gate["error"] is not None:
            raise KafkaError(gate["error"], "the in-sync replicas did not get the write")

    store = CoordinatorLog(
        "__consumer_offsets", PARTITIONS, clock, ensure_topic=lambda: PARTITIONS, append=log.append,
        read_batches=log.read, topic_exists=lambda: PARTITIONS, wait_committed=wait_committed,
    )
    groups = GroupCoordinator(
        store, GroupConfig(initial_rebalance_delay_ms=0, min_session_timeout_ms=1000), clock,
        partition_exists=lambda topic, partition: topic == TOPIC and partition < 6,
        partition_counts=lambda topics: {t: 6 for t in topics if t == TOPIC},
        topic_id_of=lambda name: TOPIC_ID if name == TOPIC else None,
        topic_name_of=lambda topic_id: TOPIC if topic_id == TOPIC_ID else None,
    )
    for partition in range(PARTITIONS):
        groups.on_leadership_change(partition, True, is_empty=True)
    return groups, gate


def test_kip848_join_is_not_in_memory_until_its_write_is_committed():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups, gate = slow_coordinator(clock, log)
        joining = asyncio.ensure_future(consumer_heartbeat(groups))
        await asyncio.sleep(0.01)
        assert not joining.done()
        assert len(log.batches[partition_for_group("cg", PARTITIONS)]) == 1  # written, not yet committed
        assert groups.describe_consumer_group("cg") is None  # nothing in memory meanwhile
        assert clock.pending_timers == 0  # and no member timer
        gate["error"] = ErrorCode.not_enough_replicas
        gate["event"].set()
        refused = await joining
        assert refused.error == ErrorCode.coordinator_not_available
        assert groups.describe_consumer_group("cg") is None and clock.pending_timers == 0
        gate["error"] = None
        joined = await consumer_heartbeat(groups)
        assert joined.error == ErrorCode.none
        assert set(groups.describe_consumer_group("cg").members) == {joined.member_id}
        assert clock.pending_timers == 1  # its session timer

    run(scenario())


def test_kip848_expiry_whose_write_fails_keeps_the_member_and_gives_it_another_session():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log, consumer_session_timeout_ms=45_000)
        member = await consumer_heartbeat(groups)
        log.fail = ErrorCode.not_enough_replicas
        clock.advance(45_001)
        for _ in range(3):
            await asyncio.sleep(0)
        assert set(groups.describe_consumer_group("cg").members) == {member.member_id}
        log.fail = None
        again = await consumer_heartbeat(groups, member.member_id, member.member_epoch, owned={TOPIC: set(range(6))})
        assert again.error == ErrorCode.none
        clock.advance(45_001)
        for _ in range(3):
            await asyncio.sleep(0)
        assert groups.describe_consumer_group("cg").members == {}

    run(scenario())


def test_kip848_heartbeat_after_its_timer_fired_keeps_the_member():
    """The session timer fires while the member's heartbeat waits for the partition's lock; the
    heartbeat is handled first, so the stale expiry must not remove the member."""
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log, consumer_session_timeout_ms=45_000)
        member = await consumer_heartbeat(groups)
        lock = groups._lock_for("cg")
        await lock.acquire()
        heartbeat = asyncio.ensure_future(
            consumer_heartbeat(groups, member.member_id, member.member_epoch, owned={TOPIC: set(range(6))}))
        await asyncio.sleep(0)  # the heartbeat waits for the lock first
        clock.advance(45_001)  # then the expiry
        await asyncio.sleep(0)
        lock.release()
        assert (await heartbeat).error == ErrorCode.none
        for _ in range(3):
            await asyncio.sleep(0)
        assert set(groups.describe_consumer_group("cg").members) == {member.member_id}

    run(scenario())


def test_static_member_replacement_whose_write_fails_keeps_the_old_member():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        old = await stable_group(groups, instance="i-1")
        log.fail = ErrorCode.not_leader_or_follower
        refused = await join(groups, instance="i-1", skip=True)
        assert refused.error == ErrorCode.not_coordinator
        assert groups.heartbeat("g", old.generation_id, old.member_id, "i-1") == ErrorCode.none
        assert {m.member_id for m, _, _ in groups.describe_group("g").members} == {old.member_id}
        log.fail = None
        again = await join(groups, instance="i-1", skip=True)
        assert again.error == ErrorCode.none and again.member_id != old.member_id
        assert groups.heartbeat("g", old.generation_id, old.member_id, "i-1") == ErrorCode.fenced_instance_id

    run(scenario())


def test_reconciliation_and_group_state_tables_cover_every_case():
    from odradek.coordinator.consumer_group_state import GROUP_STATE_TABLE, RECONCILE_TABLE, MemberState

    assert set(RECONCILE_TABLE) == {(state, blocked) for state in MemberState for blocked in (True, False)}
    assert GROUP_STATE_TABLE[-1][0](None)  # the last row always applies


def test_kip848_regex_subscription_takes_matching_topics_and_new_ones():
    async def scenario():
        clock, log = FakeClock(), MemoryLog()
        groups = loaded(clock, log)
        topics = ["other"]
        groups.topic_names = lambda: list(topics)
        joined = await groups.consumer_group_heartbeat(
            group_id="cg", member_id="", member_epoch=0, instance_id=None, rack_id=None, rebalance_timeout_ms=REBALANCE_MS,
            subscribed_topic_names=None, subscribed_topic_regex="ev.*", server_assignor=None, owned=None,
            client_id="c", client_host="/h", client_chooses_member_id=False,
        )
        assert joined.error == ErrorCode.none and joined.assignment in (None, {})
        topics.append(TOPIC)  # "events" is created: the next heartbeat picks it up
        later = await consumer_heartbeat(groups, joined.member_id, joined.member_epoch, owned={})
        assert later.assignment == {TOPIC: set(range(6))}
        member = groups.describe_consumer_group("cg").members[joined.member_id]
        assert member.subscribed_regex == "ev.*" and member.regex_topics == [TOPIC]
        bad = await groups.consumer_group_heartbeat(
            group_id="cg2", member_id="", member_epoch=0, instance_id=None, rack_id=None, rebalance_timeout_ms=REBALANCE_MS,
            subscribed_topic_names=None, subscribed_topic_regex="(unclosed", server_assignor=None, owned=None,
            client_id="c", client_host="/h", client_chooses_member_id=False,
        )
        assert bad.error == ErrorCode.invalid_regular_expression
        reloaded = coordinator(clock, log)
        reloaded.topic_names = lambda: list(topics)
        reloaded.load()
        restored = reloaded.describe_consumer_group("cg").members[joined.member_id]
        assert restored.subscribed_regex == "ev.*" and restored.regex_topics == [TOPIC]

    run(scenario())
