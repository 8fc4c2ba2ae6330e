"""Every broker's view of the cluster in ZooKeeper mode: watches that keep a MetadataImage in step.

Watched: the children and data of /brokers/ids (live brokers), of /brokers/topics (assignments),
each partition's state node (leader, epoch, ISR), each topic's config node and /controller.
kazoo calls the watches on its own thread; they only update this object's copy of the nodes
(under a lock) and ask the event loop to publish a new image. A watch fires within milliseconds of
a change, so every broker's Metadata follows the controller's decisions at once.

Partition states, thousands of nodes, are read without waiting (`get_async`): the states of a new
topic share a few round trips, where kazoo's DataWatch reads one node at a time on kazoo's one
callback thread (2,000 took 10 s on a busy broker, and every other watch waited behind them). A
burst of changes becomes one image per PUBLISH_INTERVAL_S, and an image rebuilds only the topics
that changed: the others keep their TopicImage objects, which the replica manager skips. Rare
changes that a client acts on right away (a topic's configs, the controller) skip that wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

from kazoo.client import KazooState
from kazoo.exceptions import NoNodeError
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

UNREAD_RETRY_S = 1.0  # a state read that failed while connected is tried again after this
PUBLISH_INTERVAL_S = 0.05  # images at most this often; a change after a quiet spell is published at once


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
        self._state_watchers: dict[tuple[str, int], object] = {}  # one per node: kazoo keeps a set of them
        self._unread_states: set[tuple[str, int]] = set()  # a read failed with the connection: again once back
        self._retry_pending = False  # a timer will read _unread_states again
        self._reads_in_flight = 0
        self._reads_done = threading.Condition(self._lock)
        self._controller_id = NO_LEADER
        self._topic_images: dict[str, TopicImage] = {}  # as last published
        self._changed_topics: set[str] = set()  # since then (all of them when fencing changes)
        self._publish_pending = False
        self._publish_timer: asyncio.TimerHandle | None = None  # the throttled publish, when one waits
        self._last_published = 0.0
        # Nothing is published before start() has read everything: the first image decides which
        # logs on disk belong to the cluster (the others are set aside as strays).
        self._started = False
        self._stopped = False
        self.first_image = asyncio.Event()

    def start(self, timeout_s: float = 30.0) -> None:
        """Set the watches (from a worker thread: the first reads are blocking) and wait for the
        first reads of the partition states, so that the first image has every leader."""
        client = self.store.client
        client.add_listener(self._connection_changed)
        ChildrenWatch(client, BROKER_IDS, self._broker_ids_changed)
        ChildrenWatch(client, BROKER_TOPICS, self._topic_names_changed)
        DataWatch(client, CONTROLLER, self._controller_changed)
        with self._lock:
            self._reads_done.wait_for(lambda: self._reads_in_flight == 0, timeout_s)
            self._started = True
            self._schedule_publish_locked()

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
        self._changed_topics.add(name)
        self._configs.pop(name, None)
        self._watched_topics.discard(name)
        for key in [key for key in self._states if key[0] == name]:
            del self._states[key]
        for key in [key for key in self._state_updates if key[0] == name]:
            del self._state_updates[key]
        self._watched_states = {key for key in self._watched_states if key[0] != name}
        for key in [key for key in self._state_watchers if key[0] == name]:
            del self._state_watchers[key]

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
                self._changed_topics.add(name)
                for partition in range(record.partitions):
                    if (name, partition) not in self._watched_states:
                        self._watched_states.add((name, partition))
                        new_states.append(partition)
            for partition in new_states:
                self._read_state(name, partition)
            self._schedule_publish()
            return True

        return changed

    def _read_state(self, name: str, partition: int, event=None) -> None:
        """Read a partition's state node without waiting, with a watch that reads it again when it
        changes (or, while it does not exist, when it is created)."""
        key = (name, partition)
        with self._lock:
            if self._stopped or key not in self._watched_states:
                return
            watcher = self._state_watchers.get(key)
            if watcher is None:
                watcher = self._state_watchers[key] = lambda event: self._read_state(name, partition, event)
            self._reads_in_flight += 1
        path = partition_state_path(name, partition)
        try:
            self.store.client.get_async(path, watch=watcher).rawlink(
                lambda result: self._state_read(name, partition, path, watcher, result))
        except Exception:  # noqa: BLE001 - the client is closing or not connected: read once back
            self._read_failed(key)

    def _state_read(self, name: str, partition: int, path: str, watcher, result) -> None:
        key = (name, partition)
        try:
            data, stat = result.get()
        except NoNodeError:
            data = stat = None
            self._reads_in_flight_add(1)
            try:
                self.store.client.exists_async(path, watch=watcher).rawlink(
                    lambda result: self._state_existence(name, partition, result))
            except Exception:  # noqa: BLE001
                self._read_failed(key)
        except Exception as exc:  # noqa: BLE001 - connection lost or session expired
            log.debug("reading %s failed (%s); again once connected", path, exc)
            self._read_failed(key)
            return
        with self._lock:
            self._reads_in_flight -= 1
            self._reads_done.notify_all()
            if key not in self._watched_states:
                return
            self._state_updates[key] = self._state_updates.get(key, 0) + 1
            self._changed_topics.add(name)
            if data is None:
                self._states.pop(key, None)
            else:
                try:
                    self._states[key] = PartitionState.decode(data, stat.version)
                except (ValueError, KeyError, json.JSONDecodeError) as exc:
                    log.warning("ignoring unreadable state of %s-%d: %s", name, partition, exc)
            self._schedule_publish_locked()

    def _state_existence(self, name: str, partition: int, result) -> None:
        """The node was missing; the exists() that set the watch for its creation came back."""
        try:
            stat = result.get()
        except Exception:  # noqa: BLE001
            self._read_failed((name, partition))
            return
        self._reads_in_flight_add(-1)
        if stat is not None:  # created between the two calls: its watch may never fire
            self._read_state(name, partition)

    def _reads_in_flight_add(self, count: int) -> None:
        with self._lock:
            self._reads_in_flight += count
            self._reads_done.notify_all()

    def _read_failed(self, key: tuple[str, int]) -> None:
        with self._lock:
            self._reads_in_flight -= 1
            self._reads_done.notify_all()
            self._unread_states.add(key)
            # Back already (the listener may have run before this): try again in a second.
            retry = (self.store.client.state == KazooState.CONNECTED and not self._stopped
                     and not self._retry_pending)
            self._retry_pending |= retry
        if retry:
            timer = threading.Timer(UNREAD_RETRY_S, self._read_unread)
            timer.daemon = True
            timer.start()

    def _connection_changed(self, state) -> None:
        """kazoo's connection thread: must not block."""
        if state == KazooState.CONNECTED and self._unread_states:
            self.store.client.handler.spawn(self._read_unread)

    def _read_unread(self) -> None:
        with self._lock:
            keys, self._unread_states = self._unread_states, set()
            self._retry_pending = False
        for name, partition in keys:
            self._read_state(name, partition)

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
                    self._changed_topics.add(name)
                    self._topics[name] = TopicRecord(
                        record.name, record.topic_id, record.partitions, record.replication_factor,
                        self._configs[name], record.assignment,
                    )
            self._schedule_publish(urgent=True)  # AlterConfigs has answered: leaders enforce it now
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
        self._schedule_publish(urgent=True)
        return True

    # --- publishing (the event loop) ------------------------------------------------------------

    def _schedule_publish(self, urgent: bool = False) -> None:
        with self._lock:
            self._schedule_publish_locked(urgent)

    def _schedule_publish_locked(self, urgent: bool = False) -> None:
        if self._stopped or not self._started or (self._publish_pending and not urgent):
            return
        self._publish_pending = True
        try:
            self.loop.call_soon_threadsafe(self._publish_now if urgent else self._publish)
        except RuntimeError:  # the loop is closed: the broker is gone
            self._publish_pending = False

    def _publish_now(self) -> None:
        if self._publish_timer is not None:
            self._publish_timer.cancel()
            self._publish_timer = None
        self._publish(at_once=True)

    def _publish_later(self) -> None:
        self._publish_timer = None
        self._publish()

    def _publish(self, at_once: bool = False) -> None:
        if not at_once and (self._publish_timer is not None or not self._publish_pending):
            return  # a timer will publish, or an urgent publish already has
        wait = self._last_published + PUBLISH_INTERVAL_S - time.monotonic()
        if wait > 0 and not at_once:
            self._publish_timer = self.loop.call_later(wait, self._publish_later)  # watches add to it
            return
        with self._lock:
            self._publish_pending = False
            for name in self._changed_topics:
                record = self._topics.get(name)
                if record is None:
                    self._topic_images.pop(name, None)
                else:
                    self._topic_images[name] = self._topic_image(record)
            self._changed_topics.clear()
            brokers = list(self._brokers.values())
            topics = list(self._topic_images.values())
            controller = self._controller_id
        self._last_published = time.monotonic()
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
            self._changed_topics.add(topic)
            if state is None:
                self._states.pop(key, None)
            else:
                self._states[key] = state

    def set_fenced(self, fenced: bool) -> None:
        """Fence (or unfence) this broker's view: fenced, it leads nothing (see __init__). On the
        event loop; the image is published before this returns."""
        if fenced != self.fenced:
            with self._lock:
                self.fenced = fenced
                self._changed_topics.update(self._topics)  # our leaderships show or hide
                started = self._started
            if started:
                self._publish_now()

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
