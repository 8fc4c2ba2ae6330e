"""This broker's part in a ZooKeeper-mode cluster: registration, the controller election, ISR
writes as a leader, ZooKeeper session loss, and controlled shutdown.

- Registration: the ephemeral /brokers/ids/<id>, made once the listeners accept (other brokers
  and clients find this one through it) and made again after a session expiry. While ZooKeeper
  is away it is retried until ZooKeeper answers (as Kafka's broker waits), or until a stop is
  asked for.
- Election: every broker tries to create /controller; the winner runs an ActiveController until
  it loses its session; the others watch the node and try again when it disappears, so a new
  controller takes over within a moment of the old one's death (its session timeout if it hung).
- ISR writes: conditional on the partition state's version, so a deposed leader changes nothing.
- Session loss: writes fail, so a leader cut off from ZooKeeper cannot shrink its ISR and its
  high watermark, hence acks=all, stops (it never acknowledges what it cannot commit). Cut off
  for longer than its session timeout while no other broker reaches it either (no follower
  fetched from it, it fetched from no leader), it is isolated: its session is gone and the
  controller has moved its leaderships. It then fences itself: it leads nothing and closes its
  listeners, so clients stop asking it and find the new leaders on the other brokers. (When only
  ZooKeeper is down, brokers still reach each other and keep serving, as Kafka's do.) Once
  reconnected it opens its listeners again, registers again if the session expired, and the
  watches bring the current image.
- Controlled shutdown: before stopping, the broker asks the controller to move its leaderships
  away (an ephemeral /admin/controlled_shutdown/<id>) and waits until it leads nothing that
  another in-sync replica could lead, up to controlled.shutdown timeouts.
ZooKeeper calls run in worker threads; kazoo's callbacks are handed to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from kazoo.client import KazooState
from kazoo.exceptions import ConnectionLoss, OperationTimeoutError, SessionExpiredError
from kazoo.recipe.watchers import DataWatch

from odradek.cluster.metadata import BrokerRegistration, MetadataCache
from odradek.cluster.store import MetadataStoreUnavailableError
from odradek.cluster.zk_controller import ActiveController, request_controlled_shutdown
from odradek.cluster.zk_store import CONTROLLER, PartitionState, ZkMetadataStore
from odradek.cluster.zk_watcher import ZkMetadataWatcher
from odradek.protocol.topic_partition import TopicPartition

log = logging.getLogger(__name__)

# ZooKeeper away for now: the call is worth making again once it answers
ZOOKEEPER_AWAY = (ConnectionLoss, OperationTimeoutError, SessionExpiredError, MetadataStoreUnavailableError)


async def _nothing(fenced: bool) -> None:
    return None


def _forget(work: asyncio.Future) -> None:
    """A ZooKeeper call given up on: its outcome no longer matters."""
    if not work.cancelled():
        work.exception()


class ClusterMembership:
    def __init__(
        self,
        store: ZkMetadataStore,
        watcher: ZkMetadataWatcher,
        cache: MetadataCache,
        node_id: int,
        *,
        unclean_allowed,
        security_protocols: dict[str, str],
        session_timeout_ms: int,
        auto_leader_rebalance: bool,
        imbalance_check_interval_s: float,
        stop_requested: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.watcher = watcher
        self.cache = cache
        self.node_id = node_id
        self.unclean_allowed = unclean_allowed
        self.security_protocols = security_protocols
        self.session_timeout_ms = session_timeout_ms
        self.auto_leader_rebalance = auto_leader_rebalance
        self.imbalance_check_interval_s = imbalance_check_interval_s
        self.stop_requested = stop_requested or asyncio.Event()  # set by SIGTERM, even while starting
        self.registration: BrokerRegistration | None = None  # once registered
        self.controller: ActiveController | None = None
        self._controller_gone = asyncio.Event()
        self._session_lost = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._fence_timer: asyncio.TimerHandle | None = None
        # set by the broker: when peers last reached us, and what to do when fenced / unfenced
        self.last_peer_contact = time.monotonic
        self.on_fenced = _nothing

    async def start(self, registration: BrokerRegistration) -> None:
        """Register, then take part in controller elections. Returns early, unregistered, when
        a stop is asked for while ZooKeeper is away."""
        if not await self._register(registration):
            return
        self.registration = registration
        log.info("Registered broker %d in ZooKeeper at %s", self.node_id, self.store.connect)
        self.store.client.add_listener(self._state_changed)

        def controller_changed(data, stat) -> bool:
            if self._stopping:
                return False
            if data is None:
                self._loop.call_soon_threadsafe(self._controller_gone.set)
            return True

        if not await self._unless_stop_requested(DataWatch, self.store.client, CONTROLLER, controller_changed):
            return
        self._tasks.append(asyncio.create_task(self._elect_forever(), name="odradek-controller-election"))
        self._tasks.append(asyncio.create_task(self._reregister_after_session_loss(), name="odradek-zk-session"))

    async def _register(self, registration: BrokerRegistration) -> bool:
        """Create our /brokers/ids node, trying again while ZooKeeper is away; False if a stop
        is asked for first. Another live session holding our id is refused (MetadataStoreError)."""
        while not self.stop_requested.is_set():
            try:
                return await self._unless_stop_requested(
                    self.store.register_broker, registration, self.security_protocols,
                    wait_s=self.session_timeout_ms / 1000 + 5,
                )
            except ZOOKEEPER_AWAY as exc:
                log.info("Registering broker %d in ZooKeeper failed (%s); retrying", self.node_id,
                         str(exc) or type(exc).__name__)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), 1.0)
        return False

    async def _unless_stop_requested(self, call, *args, **kwargs) -> bool:
        """Run `call` in a worker thread: True once it returns (its exception is raised), False
        if a stop is asked for first. A kazoo call waits as long as ZooKeeper is away; one left
        behind ends when the store closes its session."""
        work = asyncio.ensure_future(asyncio.to_thread(call, *args, **kwargs))
        stop = asyncio.ensure_future(self.stop_requested.wait())
        try:
            await asyncio.wait((work, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            finished = work.done()
            if not finished:  # a stop came first, or we were cancelled
                work.add_done_callback(_forget)
        if finished:
            work.result()
        return finished

    def _state_changed(self, state) -> None:  # kazoo's thread
        if self._stopping:
            return
        if state == KazooState.LOST:
            self._loop.call_soon_threadsafe(self._session_lost.set)
        elif state == KazooState.SUSPENDED:
            self._loop.call_soon_threadsafe(self._start_fence_timer)
        elif state == KazooState.CONNECTED:
            self._loop.call_soon_threadsafe(self._unfence)

    def _start_fence_timer(self) -> None:
        if self._fence_timer is None:
            self._fence_timer = self._loop.call_later(self.session_timeout_ms / 1000, self._maybe_fence)

    def _maybe_fence(self) -> None:
        """Still cut off from ZooKeeper a session timeout later: fence if no peer reaches us
        either; check again every second while it lasts."""
        self._fence_timer = None
        if self.store.client.connected or self._stopping or self.watcher.fenced:
            return
        timeout_s = self.session_timeout_ms / 1000
        peers = [b for b in self.cache.image.live_broker_ids() if b != self.node_id]
        if peers and time.monotonic() - self.last_peer_contact() > timeout_s:
            log.warning("Cut off from ZooKeeper and from the other brokers for longer than the session timeout "
                        "(%d ms): leading nothing and closing the listeners until reconnected", self.session_timeout_ms)
            self.watcher.set_fenced(True)
            self._loop.create_task(self.on_fenced(True))
            return
        self._fence_timer = self._loop.call_later(1.0, self._maybe_fence)

    def _unfence(self) -> None:
        if self._fence_timer is not None:
            self._fence_timer.cancel()
            self._fence_timer = None
        if self.watcher.fenced:
            self._loop.create_task(self._come_back())

    async def _come_back(self) -> None:
        try:
            await asyncio.to_thread(self.watcher.refresh_states)
        except Exception as exc:  # noqa: BLE001 - lost again meanwhile: the next CONNECTED retries
            log.info("Reading the cluster's state after reconnecting failed (%s); staying fenced", exc)
            return
        log.info("Reconnected to ZooKeeper; back in the cluster")
        self.watcher.set_fenced(False)
        await self.on_fenced(False)

    async def _elect_forever(self) -> None:
        while not self._stopping:
            self._controller_gone.clear()
            try:
                epoch = await asyncio.to_thread(self.store.try_become_controller, self.node_id)
            except Exception as exc:  # noqa: BLE001 - ZooKeeper unreachable: try again shortly
                log.info("Controller election failed (%s); trying again", exc)
                await asyncio.sleep(1)
                continue
            if epoch is not None:
                self.controller = ActiveController(
                    self.store, self.cache, self.node_id, epoch,
                    state_of=self.watcher.state_of, unclean_allowed=self.unclean_allowed,
                    auto_leader_rebalance=self.auto_leader_rebalance,
                    imbalance_check_interval_s=self.imbalance_check_interval_s,
                )
                await self.controller.start()
                await self._session_lost.wait()  # we stay controller until our session is gone
                await self._resign()
                continue
            await self._controller_gone.wait()

    async def _resign(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            await controller.stop()
            log.info("Broker %d is no longer the controller", self.node_id)

    async def _reregister_after_session_loss(self) -> None:
        while not self._stopping:
            await self._session_lost.wait()
            await asyncio.sleep(0)  # let the election task resign first
            self._session_lost.clear()
            log.warning("The ZooKeeper session of broker %d expired; registering again", self.node_id)
            while not self._stopping:
                try:
                    await self._register(self.registration)
                    break
                except Exception as exc:  # noqa: BLE001
                    log.info("Registering again failed (%s); retrying", exc)
                    await asyncio.sleep(1)
            self._controller_gone.set()

    async def write_isr(self, tp: TopicPartition, leader: int, leader_epoch: int, isr: list[int], expected_version: int) -> int | None:
        """A leader's ISR change: the new partition epoch, or None if the state moved on."""
        current = self.watcher.state_of(tp.topic, tp.partition)
        controller_epoch = current.controller_epoch if current is not None else 0
        state = PartitionState(leader, leader_epoch, tuple(isr), controller_epoch)

        def write() -> int | None:
            self.store.wait_until_connected()  # bounded: a worker thread is not held while ZooKeeper is away
            return self.store.update_partition_state(tp.topic, tp.partition, state, expected_version, as_controller=False)

        return await asyncio.to_thread(write)

    def elect_preferred(self, partitions) -> bool:
        """ElectLeaders reaches the controller: False when this broker is not it."""
        if self.controller is None:
            return False
        self.controller.elect_preferred(partitions)
        return True

    async def controlled_shutdown(self, timeout_s: float) -> None:
        """Ask for our leaderships to move, and wait until none is left that could move."""
        try:
            await asyncio.to_thread(request_controlled_shutdown, self.store, self.node_id)
        except Exception as exc:  # noqa: BLE001 - no ZooKeeper: nothing can move; stop anyway
            log.warning("Controlled shutdown could not be requested (%s); stopping without it", exc)
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._movable_leaderships():
                log.info("Controlled shutdown: broker %d leads no partition another replica could take", self.node_id)
                return
            await asyncio.sleep(0.05)
        log.warning("Controlled shutdown: leaderships still here after %.0f s; stopping anyway", timeout_s)

    def _movable_leaderships(self) -> list[TopicPartition]:
        image = self.cache.image
        live = set(image.live_broker_ids())
        moving = []
        for topic in image.topics.values():
            for index, partition in enumerate(topic.partitions):
                others = [r for r in partition.isr if r != self.node_id and r in live]
                if (partition.leader == self.node_id and others) or (self.node_id in partition.isr and others and partition.leader != self.node_id):
                    moving.append(TopicPartition(topic.name, index))
        return moving

    async def stop(self) -> None:
        self._stopping = True
        self.stop_requested.set()
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self._resign()
