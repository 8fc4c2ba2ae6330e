"""The elected controller of a ZooKeeper-mode cluster: it decides who leads every partition.

One broker wins the ephemeral /controller node and bumps /controller_epoch; every write it makes
to a partition's state is conditional on that epoch's znode version and on the partition's own
version, so a controller that lost its session (and with it the election) can change nothing.
It reacts to the metadata image (which every broker keeps from ZooKeeper's watches) and to its
own markers, by reconciling the stored states with what should be:

- a new topic's partitions get their first leader (the first live replica) and ISR (the live
  replicas);
- a partition whose leader is not alive gets the first live ISR member as leader (any live
  replica if `unclean.leader.election.enable`), its epoch bumped; with no candidate it stays
  offline (leader -1) until one returns;
- a dead broker is removed from the ISRs it is in (epoch bumped, as Kafka does);
- a broker asking for a controlled shutdown (/admin/controlled_shutdown/<id>) loses its
  leaderships to other ISR members and leaves every ISR, so producers see only retriable errors;
- topics marked in /admin/delete_topics are removed, and preferred leaders are restored when
  asked (ElectLeaders) or every leader.imbalance.check.interval.seconds;
- partition reassignments add the target replicas, wait until they are in sync, move the
  leadership into the target set and then drop the others.

Reconciliation runs in one task, one pass at a time, its ZooKeeper calls in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable

from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.recipe.watchers import ChildrenWatch

from odradek.cluster.metadata import NO_LEADER, MetadataCache, MetadataImage
from odradek.cluster.zk_store import DELETE_TOPICS, PartitionState, ZkMetadataStore
from odradek.protocol.errors import ErrorCode
from odradek.protocol.topic_partition import TopicPartition

log = logging.getLogger(__name__)

# partitions logged one by one when a controller pass creates or changes many; a line counts the rest
_NEW_PARTITIONS_LOGGED = 20
_CHANGES_LOGGED = 50

CONTROLLED_SHUTDOWN = "/admin/controlled_shutdown"


class ActiveController:
    def __init__(
        self,
        store: ZkMetadataStore,
        cache: MetadataCache,
        node_id: int,
        epoch: int,
        *,
        state_of: Callable[[str, int], PartitionState | None],
        unclean_allowed: Callable[[str], bool],
        imbalance_check_interval_s: float = 300.0,
        auto_leader_rebalance: bool = True,
    ) -> None:
        self.store = store
        self.cache = cache
        self.node_id = node_id
        self.epoch = epoch
        self.state_of = state_of
        self.unclean_allowed = unclean_allowed
        self.imbalance_check_interval_s = imbalance_check_interval_s
        self.auto_leader_rebalance = auto_leader_rebalance
        self._dirty = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._timer: asyncio.Task | None = None
        self._preferred_wanted: set[TopicPartition] | None = None
        self._unclean_wanted: set[TopicPartition] = set()
        self._shutting_down: set[int] = set()
        # (topic id, partition) of states this controller created that the watches have not
        # brought back yet: a pass meanwhile must not create them again
        self._created: set[tuple[uuid.UUID, int]] = set()
        self._active = True
        self._loop = asyncio.get_running_loop()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def markers_changed(children) -> bool:
            if not self._active:
                return False
            loop.call_soon_threadsafe(self._dirty.set)
            return True

        def shutdown_requests(children) -> bool:
            if not self._active:
                return False
            ids = {int(c) for c in children if c.isdigit()}
            loop.call_soon_threadsafe(self._set_shutting_down, ids)
            return True

        await asyncio.to_thread(self.store.client.ensure_path, CONTROLLED_SHUTDOWN)
        await asyncio.to_thread(ChildrenWatch, self.store.client, DELETE_TOPICS, markers_changed)
        await asyncio.to_thread(ChildrenWatch, self.store.client, CONTROLLED_SHUTDOWN, shutdown_requests)
        self.cache.subscribe(self._image_changed)
        self._dirty.set()
        self._task = loop.create_task(self._run(), name="odradek-controller")
        if self.auto_leader_rebalance:
            self._timer = loop.create_task(self._rebalance_periodically(), name="odradek-controller-preferred")
        log.info("Broker %d is the controller (epoch %d)", self.node_id, self.epoch)

    async def stop(self) -> None:
        self._active = False
        for task in (self._task, self._timer):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass

    def _image_changed(self, old: MetadataImage, new: MetadataImage) -> None:
        if self._active:
            self._dirty.set()

    def _set_shutting_down(self, ids: set[int]) -> None:
        self._shutting_down = ids
        self._dirty.set()

    def elect_preferred(self, partitions: set[TopicPartition] | None) -> None:
        """Move leadership back to each partition's first replica (all partitions if None)."""
        image = self.cache.image
        if partitions is None:
            partitions = {TopicPartition(t.name, i) for t in image.topics.values() for i in range(t.partition_count)}
        self._preferred_wanted = (self._preferred_wanted or set()) | set(partitions)
        self._dirty.set()

    def elect(self, partitions: set[TopicPartition], *, unclean: bool) -> None:
        """ElectLeaders: preferred leaders, or (unclean) any live replica for leaderless partitions."""
        if unclean:
            self._unclean_wanted = self._unclean_wanted | set(partitions)
            self._dirty.set()
        else:
            self.elect_preferred(partitions)

    async def _rebalance_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.imbalance_check_interval_s)
            self.elect_preferred(None)

    async def _run(self) -> None:
        while self._active:
            await self._dirty.wait()
            self._dirty.clear()
            image = self.cache.image
            preferred, self._preferred_wanted = self._preferred_wanted, None
            unclean, self._unclean_wanted = self._unclean_wanted, set()
            try:
                changed = await asyncio.to_thread(self._reconcile, image, set(self._shutting_down), preferred, unclean)
            except Exception:
                log.exception("Controller pass failed; trying again in a second")
                await asyncio.sleep(1)
                self._dirty.set()
                continue
            if changed:
                await asyncio.sleep(0.02)  # let the watches bring our own writes back first

    # --- one pass (worker thread) -------------------------------------------------------------

    def _reconcile(self, image: MetadataImage, shutting_down: set[int], preferred: set[TopicPartition] | None,
                   unclean_asked: set[TopicPartition] = frozenset()) -> bool:
        changed = self._delete_marked_topics(image)
        changed |= self._reassign(image)
        alive = set(image.live_broker_ids())
        live = alive - shutting_down  # a broker shutting down keeps nothing it can hand over
        for topic in image.topics.values():
            unclean: bool | None = None
            new: dict[int, PartitionState] = {}
            writes: dict[int, tuple[PartitionState, PartitionState]] = {}
            for index, registration in enumerate(topic.partitions):
                replicas = registration.replicas
                state = self.state_of(topic.name, index)
                if state is None:
                    initial = self._initial_state(replicas, live or alive)
                    if initial is not None and (topic.topic_id, index) not in self._created:
                        new[index] = initial
                    continue
                if self._created:
                    self._created.discard((topic.topic_id, index))
                wanted = self._wanted_state(topic.name, index, replicas, state, live)
                if wanted is not None and wanted.leader == NO_LEADER and state.leader in alive:
                    wanted = None  # only a shutting-down leader is left: it keeps leading until it stops
                if (wanted or state).leader == NO_LEADER:
                    if unclean is None:
                        unclean = self.unclean_allowed(topic.name)
                    if unclean or TopicPartition(topic.name, index) in unclean_asked:
                        wanted = self._unclean_state(replicas, state, live) or wanted
                if wanted is None and preferred is not None and TopicPartition(topic.name, index) in preferred:
                    wanted = self._preferred_state(replicas, state, live)
                if wanted is not None:
                    writes[index] = (state, wanted)
            if writes:
                changed |= self._write_all(topic.name, writes)
            if new:
                changed |= self._initialize(topic, new)
        return changed

    def _initial_state(self, replicas: tuple[int, ...], live: set[int]) -> PartitionState | None:
        """A new partition's first leader and ISR: its live replicas, the first leading."""
        alive = [replica for replica in replicas if replica in live]
        return PartitionState(alive[0], 0, tuple(alive), self.epoch) if alive else None

    def _initialize(self, topic, states: dict[int, PartitionState]) -> bool:
        created = self.store.create_partition_states(topic.name, states)
        self._created.update((topic.topic_id, partition) for partition in created)
        for partition in created[:_NEW_PARTITIONS_LOGGED]:
            state = states[partition]
            log.info("Partition %s-%d: leader %d, ISR %s (new)", topic.name, partition, state.leader, list(state.isr))
        if len(created) > _NEW_PARTITIONS_LOGGED:
            log.info("... and %d more new partitions of %s", len(created) - _NEW_PARTITIONS_LOGGED, topic.name)
        return bool(created)

    def _wanted_state(self, topic: str, partition: int, replicas, state: PartitionState, live: set[int]) -> PartitionState | None:
        """The state the partition should have given which brokers are alive, or None if it is right."""
        isr = [replica for replica in state.isr if replica in live]
        leader = state.leader
        if leader not in live:
            candidates = [replica for replica in replicas if replica in isr]
            leader = candidates[0] if candidates else NO_LEADER
            if leader == NO_LEADER:
                if state.leader == NO_LEADER:
                    return None  # offline; waiting for an ISR member to return
                # Keep the last ISR member(s) on record so that one of them can lead again.
                return PartitionState(NO_LEADER, state.leader_epoch + 1, state.isr, self.epoch)
        elif tuple(isr) == state.isr:
            return None
        if not isr:
            isr = [leader]
        return PartitionState(leader, state.leader_epoch + 1, tuple(isr), self.epoch)

    def _unclean_state(self, replicas, state: PartitionState, live: set[int]) -> PartitionState | None:
        alive = [replica for replica in replicas if replica in live]
        if not alive:
            return None
        log.warning("Unclean leader election: broker %d leads although it was not in the ISR %s; "
                    "records it lacks are lost", alive[0], list(state.isr))
        return PartitionState(alive[0], state.leader_epoch + 1, (alive[0],), self.epoch)

    def _preferred_state(self, replicas, state: PartitionState, live: set[int]) -> PartitionState | None:
        preferred = replicas[0] if replicas else NO_LEADER
        if preferred == state.leader or preferred not in live or preferred not in state.isr:
            return None
        return PartitionState(preferred, state.leader_epoch + 1, state.isr, self.epoch)

    def _write_all(self, topic: str, writes: dict[int, tuple[PartitionState, PartitionState]]) -> bool:
        """_write for many partitions of a topic (a broker that leads thousands stopped), a few
        hundred to a ZooKeeper transaction."""
        versions = self.store.update_partition_states(
            topic, {partition: (wanted, state.version) for partition, (state, wanted) in writes.items()})
        logged = 0
        for partition, (state, wanted) in writes.items():
            if versions.get(partition) is None:
                log.info("Partition %s-%d changed while the controller decided; deciding again", topic, partition)
            elif logged < _CHANGES_LOGGED:
                logged += 1
                log.info("Partition %s-%d: leader %d epoch %d, ISR %s (was leader %d, ISR %s)", topic, partition,
                         wanted.leader, wanted.leader_epoch, list(wanted.isr), state.leader, list(state.isr))
        unlogged = sum(1 for version in versions.values() if version is not None) - logged
        if unlogged:
            log.info("... and %d more partitions of %s changed leader or ISR", unlogged, topic)
        return True

    def _write(self, topic: str, partition: int, state: PartitionState, wanted: PartitionState) -> bool:
        version = self.store.update_partition_state(topic, partition, wanted, state.version, as_controller=True)
        if version is None:
            log.info("Partition %s-%d changed while the controller decided; deciding again", topic, partition)
            return True
        log.info("Partition %s-%d: leader %d epoch %d, ISR %s (was leader %d, ISR %s)", topic, partition,
                 wanted.leader, wanted.leader_epoch, list(wanted.isr), state.leader, list(state.isr))
        return True

    # --- reassignments (KIP-455) ----------------------------------------------------------------

    def alter_reassignments(self, changes: dict[TopicPartition, tuple[int, ...] | None]) -> dict[TopicPartition, tuple[int, str | None]]:
        """AlterPartitionReassignments (worker thread): (error code, message) per partition.
        A target of None cancels: the partition goes back to its original replicas."""
        image = self.cache.image
        live = set(image.live_broker_ids())
        ongoing = self.store.reassignments()
        results: dict[TopicPartition, tuple[int, str | None]] = {}
        for tp, target in changes.items():
            registration = image.partition(tp)
            key = (tp.topic, tp.partition)
            if registration is None:
                results[tp] = (ErrorCode.unknown_topic_or_partition, f"{tp} does not exist")
                continue
            if target is None:
                if key not in ongoing:
                    results[tp] = (ErrorCode.no_reassignment_in_progress, f"no reassignment of {tp} is in progress")
                    continue
                ongoing[key] = (ongoing[key][1], ongoing[key][1])
                results[tp] = (ErrorCode.none, None)
                continue
            if not target or len(set(target)) != len(target) or any(b not in live for b in target):
                results[tp] = (ErrorCode.invalid_replica_assignment,
                               f"replicas {list(target)} must be distinct live brokers (live: {sorted(live)})")
                continue
            original = ongoing[key][1] if key in ongoing else tuple(registration.replicas)
            ongoing[key] = (tuple(target), original)
            results[tp] = (ErrorCode.none, None)
        self.store.set_reassignments(ongoing)
        self._dirty_from_thread()
        return results

    def list_reassignments(self) -> dict[TopicPartition, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """ListPartitionReassignments (worker thread): replicas, adding, removing per partition."""
        image = self.cache.image
        listed = {}
        for (topic, partition), (target, original) in self.store.reassignments().items():
            registration = image.partition(TopicPartition(topic, partition))
            if registration is None:
                continue
            adding = tuple(b for b in target if b not in original)
            removing = tuple(b for b in original if b not in target)
            listed[TopicPartition(topic, partition)] = (tuple(registration.replicas), adding, removing)
        return listed

    def _dirty_from_thread(self) -> None:
        self._loop.call_soon_threadsafe(self._dirty.set)

    def _reassign(self, image: MetadataImage) -> bool:
        """One step of every ongoing reassignment: grow the replica set to include the target,
        then (once the target is in sync) lead from the target and shrink to it."""
        ongoing = self.store.reassignments()
        if not ongoing:
            return False
        live = set(image.live_broker_ids())
        records = self.store.topics()
        finished = []
        changed = False
        for (topic, partition), (target, _original) in ongoing.items():
            record = records.get(topic)
            state = self.state_of(topic, partition)
            if record is None or partition >= record.partitions or state is None:
                finished.append((topic, partition))
                continue
            current = record.assignment[partition]
            if tuple(current) == tuple(target) and set(state.isr) == set(target):
                # done when every target replica is in sync and no other one is left (a move to
                # a replica set that is already the current one still waits for it to catch up)
                finished.append((topic, partition))
                continue
            if not set(target) <= set(current):
                grown = tuple(target) + tuple(b for b in current if b not in target)
                records[topic] = self._set_replicas(record, partition, grown)
                log.info("Reassigning %s-%d: replicas %s while %s catch up", topic, partition, list(grown),
                         [b for b in target if b not in current])
                changed = True
                continue
            if not set(target) <= set(state.isr):
                continue  # waiting for the new replicas to catch up
            if state.leader not in target:
                leader = next((b for b in target if b in state.isr and b in live), NO_LEADER)
                if leader != NO_LEADER:
                    changed |= self._write(topic, partition, state, PartitionState(leader, state.leader_epoch + 1, state.isr, self.epoch))
                continue
            isr = tuple(b for b in state.isr if b in target)
            if isr != state.isr:
                changed |= self._write(topic, partition, state, PartitionState(state.leader, state.leader_epoch + 1, isr, self.epoch))
            records[topic] = self._set_replicas(record, partition, tuple(target))
            log.info("Reassigned %s-%d to %s", topic, partition, list(target))
            finished.append((topic, partition))
            changed = True
        if finished:
            latest = self.store.reassignments()
            for key in finished:
                if key in latest and latest[key][0] == ongoing[key][0]:
                    del latest[key]
            self.store.set_reassignments(latest)
        return changed

    def _set_replicas(self, record, partition: int, replicas: tuple[int, ...]):
        """Write one partition's replicas into the topic's assignment; returns the new record
        (the next partition of the same topic must build on it, not on the old one)."""
        assignment = list(record.assignment)
        assignment[partition] = replicas
        updated = dataclasses.replace(record, assignment=tuple(assignment))
        self.store.set_assignment(updated)
        return updated

    def _delete_marked_topics(self, image: MetadataImage) -> bool:
        changed = False
        for name in self.store.topics_to_delete():
            try:
                self.store.delete_topic_nodes(name)
            except NoNodeError:
                pass
            log.info("Deleted topic %s", name)
            changed = True
        return changed

    # --- admin requests the controller serves ------------------------------------------------

    def request_controlled_shutdown(self, node_id: int) -> None:
        self._shutting_down = self._shutting_down | {node_id}
        self._dirty.set()


def request_controlled_shutdown(store: ZkMetadataStore, node_id: int) -> None:
    """A broker about to stop asks the controller to move its leaderships (ephemeral marker)."""
    try:
        store.client.create(f"{CONTROLLED_SHUTDOWN}/{node_id}", b"", ephemeral=True, makepath=True)
    except NodeExistsError:
        pass

