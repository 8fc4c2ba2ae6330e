"""Every broker's view of the cluster in ZooKeeper mode: watches that keep a MetadataImage in step.

Watched: the children and data of /brokers/ids (live brokers), of /brokers/topics (assignments),
each partition's state node (leader, epoch, ISR), each topic's config node and /controller.
kazoo calls the watches on its own thread; they only update this object's copy of the nodes
(under a lock) and ask the event loop to publish a new image, coalescing bursts into one. A watch
fires within milliseconds of a change, so every broker's Metadata follows the controller's
decisions at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from odradek.cluster.metadata import (
    BrokerRegistration,
    MetadataCache,
    MetadataImage,
    NO_LEADER,
    PartitionRegistration,
    TopicImage,
)
from odradek.cluster.store import TopicRecord
from odradek.cluster.zk_store import (
    BROKER_IDS,
    BROKER_TOPICS,
    CONFIG_TOPICS,
    CONTROLLER,
    PartitionState,
    ZkMetadataStore,
    decode_assignment,
    decode_broker,
    decode_config,
    partition_state_path,
    topic_path,
)

log = logging.getLogger(__name__)


class ZkMetadataWatcher:
    def __init__(self, store: ZkMetadataStore, cache: MetadataCache, loop: asyncio.AbstractEventLoop,
                 node_id: int = -1) -> None:
        self.store = store
        self.cache = cache
        self.loop = loop
        self.node_id = node_id
        # Cut off from ZooKeeper for longer than the session timeout: our session is gone and the
        # controller has moved our leaderships; the image shows us leading nothing until we are back.
        self.fenced = False
        self._lock = threading.Lock()
        self._brokers: dict[int, BrokerRegistration] = {}
        self._topics: dict[str, TopicRecord] = {}
        self._configs: dict[str, dict[str, str]] = {}
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._watched_brokers: set[int] = set()
        self._watched_topics: set[str] = set()
        self._watched_states: set[tuple[str, int]] = set()
        self._state_updates: dict[tuple[str, int], int] = {}  # watch events per partition: refreshes never undo one
        self._controller_id = NO_LEADER
        self._publish_pending = False
        self._stopped = False
        self.first_image = asyncio.Event()

    def start(self) -> None:
        """Set the watches (from a worker thread: the first reads are blocking)."""
        client = self.store.client
        ChildrenWatch(client, BROKER_IDS, self._broker_ids_changed)
        ChildrenWatch(client, BROKER_TOPICS, self._topic_names_changed)
        DataWatch(client, CONTROLLER, self._controller_changed)
        self._schedule_publish()

    def stop(self) -> None:
        self._stopped = True

    # --- watches (kazoo's thread) ---------------------------------------------------------------

    def _broker_ids_changed(self, children) -> bool:
        if self._stopped:
            return False
        ids = {int(child) for child in children if child.isdigit()}
        with self._lock:
            for gone in set(self._brokers) - ids:
                del self._brokers[gone]
            new = ids - self._watched_brokers
            self._watched_brokers |= new
        for node_id in new:
            DataWatch(self.store.client, f"{BROKER_IDS}/{node_id}", self._broker_watch(node_id))
        self._schedule_publish()
        return True

    def _broker_watch(self, node_id: int):
        def changed(data, stat) -> bool:
            if self._stopped:
                return False
            with self._lock:
                if data is None:
                    self._brokers.pop(node_id, None)
                    self._watched_brokers.discard(node_id)
                else:
                    try:
                        self._brokers[node_id] = decode_broker(node_id, data)
                    except (ValueError, KeyError) as exc:
                        log.warning("ignoring unreadable registration of broker %d: %s", node_id, exc)
            self._schedule_publish()
            return data is not None

        return changed

    def _topic_names_changed(self, children) -> bool:
        if self._stopped:
            return False
        names = set(children)
        with self._lock:
            for gone in set(self._topics) - names:
                self._forget_topic(gone)
            new = names - self._watched_topics
            self._watched_topics |= new
        for name in new:
            DataWatch(self.store.client, topic_path(name), self._topic_watch(name))
            DataWatch(self.store.client, f"{CONFIG_TOPICS}/{name}", self._config_watch(name))
        self._schedule_publish()
        return True

    def _forget_topic(self, name: str) -> None:
        self._topics.pop(name, None)
        self._configs.pop(name, None)
        self._watched_topics.discard(name)
        for key in [key for key in self._states if key[0] == name]:
            del self._states[key]
        for key in [key for key in self._state_updates if key[0] == name]:
            del self._state_updates[key]
        self._watched_states = {key for key in self._watched_states if key[0] != name}

    def _topic_watch(self, name: str):
        def changed(data, stat) -> bool:
            if self._stopped:
                return False
            new_states = []
            with self._lock:
                if data is None:
                    if name in self._topics:
                        self._forget_topic(name)
                    self._schedule_publish_locked()
                    return name in self._watched_topics
                try:
                    record = decode_assignment(name, data, self._configs.get(name, {}))
                except (ValueError, KeyError, json.JSONDecodeError) as exc:
                    log.warning("ignoring unreadable assignment of topic %s: %s", name, exc)
                    return True
                self._topics[name] = record
                for partition in range(record.partitions):
                    if (name, partition) not in self._watched_states:
                        self._watched_states.add((name, partition))
                        new_states.append(partition)
            for partition in new_states:
                DataWatch(self.store.client, partition_state_path(name, partition), self._state_watch(name, partition))
            self._schedule_publish()
            return True

        return changed

    def _state_watch(self, name: str, partition: int):
        def changed(data, stat) -> bool:
            if self._stopped:
                return False
            with self._lock:
                if (name, partition) not in self._watched_states:
                    return False
                self._state_updates[(name, partition)] = self._state_updates.get((name, partition), 0) + 1
                if data is None:
                    self._states.pop((name, partition), None)
                else:
                    try:
                        self._states[(name, partition)] = PartitionState.decode(data, stat.version)
                    except (ValueError, KeyError, json.JSONDecodeError) as exc:
                        log.warning("ignoring unreadable state of %s-%d: %s", name, partition, exc)
            self._schedule_publish()
            return True

        return changed

    def _config_watch(self, name: str):
        def changed(data, stat) -> bool:
            if self._stopped:
                return False
            with self._lock:
                if name not in self._watched_topics:
                    return False
                self._configs[name] = decode_config(data)
                record = self._topics.get(name)
                if record is not None:
                    self._topics[name] = TopicRecord(
                        record.name, record.topic_id, record.partitions, record.replication_factor,
                        self._configs[name], record.assignment,
                    )
            self._schedule_publish()
            return True

        return changed

    def _controller_changed(self, data, stat) -> bool:
        if self._stopped:
            return False
        controller = NO_LEADER
        if data:
            try:
                controller = int(json.loads(data)["brokerid"])
            except (ValueError, KeyError, json.JSONDecodeError):
                pass
        with self._lock:
            self._controller_id = controller
        self._schedule_publish()
        return True

    # --- publishing (the event loop) ------------------------------------------------------------

    def _schedule_publish(self) -> None:
        with self._lock:
            self._schedule_publish_locked()

    def _schedule_publish_locked(self) -> None:
        if self._publish_pending or self._stopped:
            return
        self._publish_pending = True
        try:
            self.loop.call_soon_threadsafe(self._publish)
        except RuntimeError:  # the loop is closed: the broker is gone
            self._publish_pending = False

    def _publish(self) -> None:
        with self._lock:
            self._publish_pending = False
            brokers = list(self._brokers.values())
            topics = [self._topic_image(record) for record in self._topics.values()]
            controller = self._controller_id
        self.cache.publish(MetadataImage.build(self.store.cluster_id, controller, brokers, topics))
        self.first_image.set()

    def refresh_states(self) -> None:
        """Read every partition state again (blocking: a worker thread). After being cut off, the
        copies held here are stale until the watches fire; unfencing waits for fresh ones so that
        this broker never leads again on an epoch the controller has moved past."""
        with self._lock:
            keys = list(self._watched_states)
        for topic, partition in keys:
            self._refresh_state(topic, partition)

    def refresh_state(self, topic: str, partition: int) -> None:
        """Read one partition's state again and publish (blocking): a follower told by its leader
        that its leader epoch is old has missed a change, and must not wait for a watch that
        already fired while this broker's session was being replaced."""
        self._refresh_state(topic, partition)
        self._schedule_publish()

    def _refresh_state(self, topic: str, partition: int) -> None:
        key = (topic, partition)
        with self._lock:
            if key not in self._watched_states:
                return
            seen = self._state_updates.get(key, 0)
        state = self.store.partition_state(topic, partition)
        with self._lock:
            if self._state_updates.get(key, 0) != seen:
                return  # a watch brought a newer state while this one was read: keep it
            if state is None:
                self._states.pop(key, None)
            else:
                self._states[key] = state

    def set_fenced(self, fenced: bool) -> None:
        """Fence (or unfence) this broker's view: fenced, it leads nothing (see __init__)."""
        if fenced != self.fenced:
            self.fenced = fenced
            self._schedule_publish()

    def _topic_image(self, record: TopicRecord) -> TopicImage:
        """Caller holds the lock. A partition without a state node yet has no leader."""
        partitions = []
        for index, replicas in enumerate(record.assignment):
            state = self._states.get((record.name, index))
            if state is None:
                partitions.append(PartitionRegistration(replicas, (), NO_LEADER, -1, -1))
            else:
                leader = NO_LEADER if self.fenced and state.leader == self.node_id else state.leader
                partitions.append(PartitionRegistration(replicas, state.isr, leader, state.leader_epoch, state.version))
        return TopicImage(record.name, record.topic_id, tuple(partitions), dict(record.configs))

    def state_of(self, topic: str, partition: int) -> PartitionState | None:
        with self._lock:
            return self._states.get((topic, partition))
