"""A whole broker assembled from its layers, run as a process (`run_broker`) or in-process (`Broker`).

Start-up: lock every log dir -> bind the listeners (not yet accepting) -> metadata store -> log
manager (recovery in a worker thread) -> replica manager and controller -> accept; one log line
names the listener and data dirs. A refusal before the data is read leaves it untouched. Shutdown: stop
accepting, finish in-flight requests, flush and close every log, write the clean-shutdown marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import io
import logging
import resource
import shutil
import signal
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING
from pathlib import Path

from odradek.clock import Clock
from odradek.cluster.controller import Controller
from odradek.cluster.acls import AclService, authorizer_enabled
from odradek.cluster.delegation_tokens import DelegationTokens
from odradek.cluster.dynamic_config import DynamicConfigs, ensure_cluster_min_insync_replicas
from odradek.cluster.local_store import LocalMetadataStore
from odradek.cluster.local_store import new_cluster_id as _new_cluster_id
from odradek.cluster.metadata import BrokerRegistration, Endpoint, MetadataCache
from odradek.cluster.store import MetadataStoreError
from odradek.config import BrokerConfig, ConfigError
from odradek.coordinator.group_coordinator import GroupConfig, GroupCoordinator
from odradek.coordinator.producer_ids import ProducerIdManager
from odradek.coordinator.state_log import CoordinatorLog
from odradek.coordinator.transaction_coordinator import TransactionConfig, TransactionCoordinator
from odradek.coordinator.txn_channel import Leader, TransactionChannel
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import TopicPartition
from odradek.handlers.context import BrokerServices
from odradek.log.cleaner import LogCleaner
from odradek.log.dir_lock import LogDirError, LogDirLock, acquire_all, release_all
from odradek.log.log_config import LogConfig
from odradek.log.manager import LogManager
from odradek.replica.manager import ReplicaManager
from odradek.security.client_security import inter_broker_security
from odradek.security.mechanisms import listener_mechanisms
from odradek.replica.fetch_sessions import FetchSessionCache
from odradek.security.quotas import ClientQuotas
from odradek.server.request_stats import RequestStats
from odradek.security.session import Session
from odradek.security.tls import (
    ANONYMOUS,
    listener_identity,
    parse_mapping_rules,
    principal_of,
    server_context,
    store_fingerprint,
)
from odradek.server.connection_limits import ConnectionLimits
from odradek.server.dispatcher import Dispatcher
from odradek.server.server import SocketServer

if TYPE_CHECKING:  # cluster mode's modules (kazoo and all) are imported only by a broker that needs them
    from odradek.cluster.membership import ClusterMembership
    from odradek.cluster.zk_store import ZkMetadataStore
    from odradek.cluster.zk_watcher import ZkMetadataWatcher
    from odradek.replica.fetcher import ReplicaFetcherManager

log = logging.getLogger("odradek.server")

OFFSETS_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"

RECOVERY_CHECKPOINT_INTERVAL_S = 60.0
FLUSH_CHECK_INTERVAL_MS = 1000


RELOAD_RETRY_S = 2.0


def _reload_on_change(what: str, reload: Callable[[], Awaitable[object]]) -> Callable[[], None]:
    """A ZooKeeper watch's callback (run on kazoo's thread) that re-reads `what` on the event
    loop. A read that fails (ZooKeeper away, or this broker stopping under it) is one line and is
    tried again, since the change would otherwise wait for the next one to be seen."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    async def read() -> None:
        while True:
            try:
                await reload()
                return
            except Exception as error:  # noqa: BLE001 - kazoo's, the store's: all mean "not now"
                log.warning("Could not read the changed %s from ZooKeeper (%s); trying again in %.0f s",
                            what, str(error) or type(error).__name__, RELOAD_RETRY_S)
                await asyncio.sleep(RELOAD_RETRY_S)

    def start() -> None:
        task = loop.create_task(read())
        running.add(task)
        task.add_done_callback(running.discard)

    return lambda: loop.call_soon_threadsafe(start)


class BrokerRuntime:
    """The running broker on one event loop. start() and stop() must be called on that loop."""

    def __init__(self, config: BrokerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.servers: list[SocketServer] = []
        self._timers: list[asyncio.Task] = []
        self._dir_locks: list[LogDirLock] = []
        self.log_manager: LogManager | None = None
        self.replicas: ReplicaManager | None = None
        self.groups: GroupCoordinator | None = None
        self.transactions: TransactionCoordinator | None = None
        self.cleaner: LogCleaner | None = None  # when log.cleaner.enable
        # cluster mode
        self._zk_store: ZkMetadataStore | None = None
        self._watcher: ZkMetadataWatcher | None = None
        self.membership: ClusterMembership | None = None
        self.fetchers: ReplicaFetcherManager | None = None
        self._credentials: DynamicConfigs | None = None  # users' SCRAM credentials, once loaded
        self._tokens: DelegationTokens | None = None  # delegation tokens, once loaded
        self._inter_broker_security = None  # ClientSecurity towards the other brokers (cluster mode)
        self._tls_stores: dict[str, tuple[tuple, tuple]] = {}  # TLS listener -> (store fingerprint, certificate identity)
        self.operator_endpoints = None  # metrics.listener: web.endpoints.OperatorEndpoints
        self.stop_requested = asyncio.Event()  # SIGTERM: also ends a start-up that waits for ZooKeeper

    async def start(self) -> None:
        """Lock the log dirs, bind the listeners, then (only then) read and load the data.

        A refusal (LogDirError, MetadataStoreError, a taken port: OSError) leaves the data
        untouched; stop() then releases whatever was taken."""
        config = self.config
        node_id = config.node_id
        log_dirs = [Path(d) for d in config.log_dirs]
        self._dir_locks = await asyncio.to_thread(acquire_all, log_dirs)
        limits = ConnectionLimits(config, [listener.name for listener in config.listeners], config.inter_broker_listener_name)
        sessions = []  # per listener: how its connections' Sessions are made (a bad config is refused now)
        for listener in config.listeners:
            protocol = config.security_protocol_of(listener.name)
            sessions.append(self._session_factory(listener.name, protocol))
            server = SocketServer(
                None,
                listener.host,
                listener.port,
                max_request_bytes=config["socket.request.max.bytes"],
                max_idle_ms=config["connections.max.idle.ms"],
                receive_timeout_ms=config["socket.request.receive.timeout.ms"],
                on_stopping=self._release_parked_requests,
                ssl_context=self._listener_context(config, listener.name, protocol) if protocol.endswith("SSL") else None,
                listener_name=listener.name, limits=limits,
                send_buffer_bytes=config["socket.send.buffer.bytes"],
                receive_buffer_bytes=config["socket.receive.buffer.bytes"],
            )
            self.servers.append(server)
            await server.bind()
        cluster_mode = config["zookeeper.connect"] is not None
        authorizer_enabled(config)  # refuse an unknown authorizer.class.name before reading data
        if config["metrics.listener"]:
            from odradek.web.endpoints import parse_listener  # the web side is imported only when served

            parse_listener(config["metrics.listener"])  # and a metrics.listener that is not http://host:port
        # how this broker reaches the others; unusable TLS or SASL settings are refused before reading data
        self._inter_broker_security = inter_broker_security(config) if cluster_mode else None
        metadata = MetadataCache()
        if cluster_mode:
            store = await asyncio.to_thread(_open_zookeeper_store, log_dirs, config)
            self._zk_store = store
        else:
            store = await asyncio.to_thread(_open_metadata_store, log_dirs, config)
        await asyncio.to_thread(ensure_cluster_min_insync_replicas, store, config)
        configs = DynamicConfigs(config, store, node_id)
        configs.check_broker = self._check_listener_stores
        self._apply_dynamic_stores(configs.effective)
        quotas = ClientQuotas(config["quota.window.num"], config["quota.window.size.seconds"],
                              mutation_window_num=config["controller.quota.window.num"],
                              mutation_window_size_s=config["controller.quota.window.size.seconds"])
        quotas.configure(configs.client_quotas())
        limits.ip_quotas = quotas
        acls = await asyncio.to_thread(AclService, store, config)
        if cluster_mode and acls.enabled:
            self._watch_acls(store, acls)
        tokens = await asyncio.to_thread(DelegationTokens, store, config, self.clock)
        if cluster_mode and tokens.enabled:
            self._watch_tokens(store, tokens)
        log_manager = LogManager(log_dirs, self.clock, cluster_id=store.cluster_id, node_id=node_id)
        replicas = ReplicaManager(log_manager, node_id, clock=self.clock)
        replicas.configure_throttles(configs.effective)
        self.replicas = replicas
        if cluster_mode:
            from odradek.cluster.cluster_controller import ClusterController
            from odradek.cluster.zk_watcher import ZkMetadataWatcher

            controller = ClusterController(store, replicas, configs.effective, node_id, metadata)
            self._watcher = ZkMetadataWatcher(store, metadata, asyncio.get_running_loop(), node_id)
            await asyncio.to_thread(self._watcher.start)
            await asyncio.wait_for(self._watcher.first_image.wait(), 30)
        else:
            controller = Controller(store, replicas, configs.effective, node_id, metadata)
        try:
            await asyncio.to_thread(
                log_manager.startup,
                lambda tp: LogConfig.from_topic_config(controller.topic_config_values(tp.topic)),
            )
        except BaseException:
            # Not every log was loaded (or recovered): close them without the clean-shutdown
            # marker, so the next start recovers whatever this one did not.
            log_manager.close()
            raise
        self.log_manager = log_manager
        groups = self._group_coordinator(controller, replicas, configs)
        self.groups = groups
        producer_ids = ProducerIdManager(lambda size: controller.run(store.allocate_producer_id_block, size))
        transactions = self._transaction_coordinator(controller, replicas, metadata, groups, producer_ids, cluster_mode)
        self.transactions = transactions
        listeners = config.listeners
        if cluster_mode:
            from odradek.replica.fetcher import FetcherConfig, ReplicaFetcherManager

            membership = self._cluster_membership(store, metadata, controller)
            self.fetchers = ReplicaFetcherManager(replicas, FetcherConfig(
                node_id=node_id,
                max_wait_ms=config["replica.fetch.wait.max.ms"],
                min_bytes=config["replica.fetch.min.bytes"],
                max_bytes=config["replica.fetch.response.max.bytes"],
                partition_max_bytes=config["replica.fetch.max.bytes"],
                backoff_ms=config["replica.fetch.backoff.ms"],
                security=self._inter_broker_security,
            ))
            replicas.configure_cluster(
                fetchers=self.fetchers, config_values_for=controller.topic_config_values,
                isr_writer=membership.write_isr, listener_name=config.inter_broker_listener_name,
                state_reader=lambda tp: asyncio.to_thread(self._watcher.refresh_state, tp.topic, tp.partition),
            )
            replicas.apply_image(metadata.image)  # leading __consumer_offsets partitions loads their groups
            metadata.subscribe(lambda old, new: replicas.apply_image(new))
            services_controller = controller
        else:
            controller.load_partitions()  # leading __consumer_offsets partitions loads their groups
            controller.register_broker(self._registration(node_id, listeners))
            services_controller = controller
        await groups.wait_until_loaded()
        await transactions.wait_until_loaded()

        services = BrokerServices(
            config=config,
            node_id=node_id,
            cluster_id=store.cluster_id,
            clock=self.clock,
            metadata=metadata,
            controller=services_controller,
            replicas=replicas,
            producer_ids=producer_ids,
            groups=groups,
            transactions=transactions,
            configs=configs,
            membership=self.membership,
            acls=acls,
            tokens=tokens,
            quotas=quotas,
            fetch_sessions=FetchSessionCache(config["max.incremental.fetch.session.cache.slots"]),
        )
        self._credentials = configs  # SCRAM logins read users' credentials from here from now on
        self._tokens = tokens
        request_stats = RequestStats() if config["metrics.listener"] else None
        if request_stats is not None:
            await self._serve_operators(services, request_stats)  # HTTP answers by the time Kafka clients can connect
        for listener, server, session_factory in zip(listeners, self.servers, sessions):
            server.dispatcher = Dispatcher(services, listener.name, request_stats)
            server.session_factory = session_factory
            await server.start()
        self.bound_port = self.servers[0].port
        if cluster_mode:
            await self.membership.start(self._registration(node_id, listeners))
            if self.stop_requested.is_set():
                return  # stopped while waiting for ZooKeeper: stop() ends what was started
            self._timers.append(asyncio.create_task(self._shrink_isrs(config["replica.lag.time.max.ms"])))
            self._watch_broker_configs(store, configs, controller, quotas)
            self.membership.last_peer_contact = lambda: replicas.last_peer_contact
            self.membership.on_fenced = self._fenced

        self._timers.append(asyncio.create_task(self._checkpoint_offsets(config["replica.high.watermark.checkpoint.interval.ms"])))
        self._timers.append(asyncio.create_task(self._expire_offsets(config["offsets.retention.check.interval.ms"])))
        self._timers.append(asyncio.create_task(self._every(
            config["transaction.abort.timed.out.transaction.cleanup.interval.ms"], transactions.abort_timed_out)))
        self._timers.append(asyncio.create_task(self._every(
            config["transaction.remove.expired.transaction.cleanup.interval.ms"], transactions.expire_transactional_ids)))
        self._timers.append(asyncio.create_task(self._enforce_retention(config["log.retention.check.interval.ms"])))
        if config["log.cleaner.enable"]:
            self.cleaner = LogCleaner(self.log_manager, self.clock, uncleanable_offset_of=self._uncleanable_offset)
            self._timers.append(asyncio.create_task(self._clean_logs(self.cleaner, config["log.cleaner.backoff.ms"])))
        self._timers.append(asyncio.create_task(self._flush_periodically(config.flush_interval_ms)))
        if tokens.enabled:
            self._timers.append(asyncio.create_task(self._every(
                config["delegation.token.expiry.check.interval.ms"],
                lambda: services_controller.run(tokens.remove_expired))))
        log.info(
            "odradek started: node %d listening on %s, data in %s, cluster id %s",
            node_id,
            ", ".join(f"{l.name}://{l.host}:{s.port}" for l, s in zip(listeners, self.servers)),
            ", ".join(str(d) for d in log_dirs),
            store.cluster_id,
        )

    async def _serve_operators(self, services: BrokerServices, request_stats: RequestStats) -> None:
        """metrics.listener: /metrics, /health, /ready, the REST API and the console."""
        from odradek.security.mechanisms import plain_accounts
        from odradek.web.endpoints import OperatorEndpoints
        from odradek.web.http_auth import HttpAuthenticator
        from odradek.web.metrics import BrokerCollector
        from odradek.web.rest_api import RestApi

        collector = BrokerCollector(
            services, request_stats,
            connections=lambda: {server.listener_name: server.connection_count for server in self.servers},
            in_flight=lambda: sum(server.busy_count for server in self.servers),
            is_controller=lambda: self.membership is None or self.membership.controller is not None,
            uncleanable=lambda: self.cleaner.uncleanable() if self.cleaner is not None else {},
        )
        config = self.config
        authenticator = HttpAuthenticator(config["http.authentication.method"], self._stored_credential,
                                          plain_accounts(config))
        def local_offsets(tp):
            partition = services.replicas.partition(tp)
            return (partition.log_start_offset, partition.high_watermark) if partition is not None and partition.is_leader else None

        rest = RestApi(services.cluster_id, self._http_bootstrap(), inter_broker_security(config), config.node_id,
                       lambda: services.acls.authorizer, lambda: services.metadata.image, local_offsets)
        self.operator_endpoints = OperatorEndpoints(config["metrics.listener"], collector, self._not_ready,
                                                    authenticator=authenticator,
                                                    authorizer_of=lambda: services.acls.authorizer, rest=rest,
                                                    node_id=config.node_id, topic_stats=services.replicas.topic_stats)
        await self.operator_endpoints.start()

    def _http_bootstrap(self) -> str:
        """Where the REST API's Kafka client connects: this broker's inter-broker listener (the
        caller's own rights are checked before it is used; it acts as the broker)."""
        config = self.config
        name = config.inter_broker_listener_name
        endpoint = next(e for e in self._registration(config.node_id, config.listeners).endpoints if e.listener == name)
        host = "127.0.0.1" if endpoint.host in ("", "0.0.0.0", "::") else endpoint.host
        return f"{host}:{endpoint.port}"

    def _not_ready(self) -> list[str]:
        """Why this broker should not get traffic yet (empty: ready): in a cluster, until it is
        registered and back in the ISR of every partition it follows."""
        reasons = []
        membership = self.membership
        if membership is not None:
            if membership.registration is None:
                reasons.append("registration in ZooKeeper")
            node_id = self.config.node_id
            behind = [p.topic_partition for p in self.replicas.partitions() if not p.is_leader and node_id not in p.isr]
            if behind:
                reasons.append(f"catching up: out of the ISR of {len(behind)} partition(s), e.g. {behind[0]}")
        return reasons

    def _cluster_membership(self, store, metadata, controller) -> ClusterMembership:
        from odradek.cluster.membership import ClusterMembership

        config = self.config
        self.membership = ClusterMembership(
            store, self._watcher, metadata, config.node_id,
            unclean_allowed=lambda topic: bool(controller.topic_config_values(topic).get("unclean.leader.election.enable")),
            security_protocols=config.security_protocol_map,
            session_timeout_ms=config["zookeeper.session.timeout.ms"],
            auto_leader_rebalance=config["auto.leader.rebalance.enable"],
            imbalance_check_interval_s=config["leader.imbalance.check.interval.seconds"],
            stop_requested=self.stop_requested,
        )
        return self.membership

    async def _fenced(self, fenced: bool) -> None:
        """Cut off from the cluster: close the listeners (clients go to the other brokers); back:
        open them again on the same ports."""
        for server in self.servers:
            if fenced:
                await server.go_dark()
            else:
                await server.come_back()

    def _watch_acls(self, store, acls: AclService) -> None:
        """ACLs changed by any broker (or Kafka's tools) reach this one through ZooKeeper's
        /kafka-acl-changes notifications."""
        store.watch_acl_changes(_reload_on_change("ACLs", lambda: asyncio.to_thread(acls.reload)))

    def _watch_tokens(self, store, tokens: DelegationTokens) -> None:
        """Tokens created, renewed or expired through any broker reach this one through ZooKeeper's
        /delegation_token/token_changes notifications."""
        store.watch_delegation_token_changes(_reload_on_change("delegation tokens", lambda: asyncio.to_thread(tokens.reload)))

    def _watch_broker_configs(self, store, configs, controller, quotas: ClientQuotas) -> None:
        """Dynamic broker configs and client quotas changed by any broker (kafka-configs
        --entity-default, --entity-type users) reach this one through ZooKeeper's /config/changes
        notifications."""

        async def reload() -> None:
            changed = await asyncio.to_thread(configs.reload)
            quotas.configure(configs.client_quotas())
            if changed:
                controller.reconfigure(configs.effective)
                log.info("Dynamic broker configs changed; applied")

        store.watch_config_changes(_reload_on_change("configs", reload))

    async def _shrink_isrs(self, lag_time_max_ms: int) -> None:
        """Leaders drop followers that fell behind, checked every half replica.lag.time.max.ms."""
        while True:
            await asyncio.sleep(max(lag_time_max_ms / 2, 100) / 1000)
            self.replicas.shrink_isrs(lag_time_max_ms)

    def _session_factory(self, listener: str, protocol: str):
        """Each connection's Session: on SASL listeners with the mechanisms offered there; on TLS
        listeners the principal of the client's certificate (ANONYMOUS without one). Built once, at
        bind, so a bad mechanism or mapping rule refuses start-up before any data is read."""
        config = self.config
        rules = parse_mapping_rules(str(config.for_listener(listener, "ssl.principal.mapping.rules")))
        mechanisms = None
        if protocol.startswith("SASL"):
            mechanisms = listener_mechanisms(config, listener, self._stored_credential, self._token_login)
        limit = config.for_listener(listener, "sasl.server.max.receive.size")
        reauth_ms = config.for_listener(listener, "connections.max.reauth.ms")
        clock = self.clock

        def session(writer) -> Session:
            principal = ANONYMOUS
            if protocol == "SSL":
                principal = principal_of(writer.get_extra_info("ssl_object"), rules)
            return Session(principal, mechanisms=mechanisms, max_unauthenticated_bytes=limit, reauth_ms=reauth_ms,
                           now_ms=clock.now_ms)

        return session

    def _listener_context(self, config: BrokerConfig, listener: str, protocol: str) -> ssl.SSLContext:
        context = server_context(config, listener, protocol)
        self._tls_stores[listener] = (store_fingerprint(config, listener), listener_identity(config, listener))
        return context

    def _apply_dynamic_stores(self, effective: BrokerConfig) -> None:
        """Key stores set dynamically before a restart replace those of server.properties (the
        listeners were bound with the latter, before the metadata store was read); one that can no
        longer be used is ignored with a log line, as Kafka ignores an invalid dynamic config."""
        try:
            switch = self._check_listener_stores(effective)
        except KafkaError as error:
            log.error("Dynamic key store configs ignored, the listeners keep those of the broker's config: %s", error.message)
            return
        if switch is not None:
            switch()

    def _check_listener_stores(self, candidate: BrokerConfig):
        """A TLS listener whose key or trust store changes (other settings, or the same file
        replaced on disk) gets a new context, built now: a store that cannot be used, or whose
        certificate names another subject (unless ssl.allow.dn.changes / ssl.allow.san.changes),
        refuses the AlterConfigs with Kafka's message. Returns what switches the listeners over."""
        switches = []
        for listener, server in zip(self.config.listeners, self.servers):
            if listener.name not in self._tls_stores:
                continue
            fingerprint = store_fingerprint(candidate, listener.name)
            old_fingerprint, old_identity = self._tls_stores[listener.name]
            if fingerprint == old_fingerprint:
                continue
            try:
                context = server_context(candidate, listener.name, candidate.security_protocol_of(listener.name))
                identity = listener_identity(candidate, listener.name)
            except ConfigError as error:
                raise KafkaError(ErrorCode.invalid_config, f"Validation of dynamic config update of SSLFactory failed: {error}") from None
            subject_changed = identity[0] != old_identity[0] and not candidate.for_listener(listener.name, "ssl.allow.dn.changes")
            names_changed = identity[1] != old_identity[1] and not candidate.for_listener(listener.name, "ssl.allow.san.changes")
            if subject_changed or names_changed:
                raise KafkaError(ErrorCode.invalid_config, "Validation of dynamic config update of SSLFactory failed: "
                                 f"Keystore DistinguishedName or SubjectAltNames do not match: {old_identity[0]} "
                                 f"{list(old_identity[1])} before, {identity[0]} {list(identity[1])} now")
            switches.append((listener.name, server, context, fingerprint, identity))
        if not switches:
            return None

        def switch() -> None:
            for name, server, context, fingerprint, identity in switches:
                server.set_ssl_context(context)
                self._tls_stores[name] = (fingerprint, identity)
                log.info("Listener %s: new connections use the new key store (%s)", name, identity[0])

        return switch

    def _stored_credential(self, user: str, mechanism: str) -> str | None:
        """A user's stored SCRAM credential (none until the dynamic configs are loaded)."""
        return self._credentials.user_configs(user).get(mechanism) if self._credentials is not None else None

    def _token_login(self, token_id: str, mechanism: str):
        """A delegation token's SCRAM login (none until the tokens are loaded)."""
        return self._tokens.login(token_id, mechanism) if self._tokens is not None else None

    def _registration(self, node_id: int, listeners) -> BrokerRegistration:
        """This broker's advertised endpoints; an advertised port 0 is the port its listener bound."""
        bound = {listener.name: server.port for listener, server in zip(listeners, self.servers)}
        endpoints = tuple(
            Endpoint(listener.name, listener.host, listener.port or bound.get(listener.name, 0))
            for listener in self.config.advertised_listeners
        )
        return BrokerRegistration(node_id, endpoints, rack=self.config.get("broker.rack"))

    def _group_coordinator(self, controller, replicas, configs: DynamicConfigs) -> GroupCoordinator:
        config = self.config
        offsets_partitions = config["offsets.topic.num.partitions"]
        offsets_configs = {"cleanup.policy": "compact", "segment.bytes": str(config["offsets.topic.segment.bytes"])}

        def existing_partitions() -> int | None:
            record = controller.topic(OFFSETS_TOPIC)
            return record.partitions if record is not None else None

        commit_timeout_s = config["offsets.commit.timeout.ms"] / 1000
        store = CoordinatorLog(
            OFFSETS_TOPIC,
            offsets_partitions,
            self.clock,
            ensure_topic=lambda: controller.ensure_internal_topic(
                OFFSETS_TOPIC, offsets_partitions, offsets_configs, config["offsets.topic.replication.factor"]
            ).partitions,
            append=lambda tp, batch: replicas.append_records(tp, batch, required_acks=-1),
            read_batches=replicas.read_batches,
            topic_exists=existing_partitions,
            wait_committed=lambda tp, offset: replicas.wait_for_high_watermark(tp, offset, commit_timeout_s),
        )
        group_config = GroupConfig(
            initial_rebalance_delay_ms=config["group.initial.rebalance.delay.ms"],
            min_session_timeout_ms=config["group.min.session.timeout.ms"],
            max_session_timeout_ms=config["group.max.session.timeout.ms"],
            max_size=config["group.max.size"],
            offset_metadata_max_bytes=config["offset.metadata.max.bytes"],
            offsets_retention_ms=config["offsets.retention.minutes"] * 60_000,
            consumer_session_timeout_ms=config["group.consumer.session.timeout.ms"],
            consumer_heartbeat_interval_ms=config["group.consumer.heartbeat.interval.ms"],
            consumer_assignors=tuple(config["group.consumer.assignors"]),
            migration_policy=config["group.consumer.migration.policy"],
        )

        def partition_counts(topics) -> dict[str, int]:
            records = (controller.topic(topic) for topic in topics)
            return {record.name: record.partitions for record in records if record is not None}

        coordinator = GroupCoordinator(
            store,
            group_config,
            self.clock,
            partition_exists=lambda topic, partition: replicas.partition(TopicPartition(topic, partition)) is not None,
            partition_counts=partition_counts,
            topic_id_of=lambda name: record.topic_id if (record := controller.topic(name)) is not None else None,
            topic_name_of=lambda topic_id: record.name if (record := controller.topic_by_id(topic_id)) is not None else None,
            group_setting=configs.group_value,
            topic_names=lambda: [name for name, record in controller.metadata.image.topics.items() if not record.is_internal],
        )

        def leadership_changed(partition, is_leader: bool) -> None:
            tp = partition.topic_partition
            if tp.topic == OFFSETS_TOPIC:
                empty = partition.log_end_offset <= partition.log_start_offset
                coordinator.on_leadership_change(tp.partition, is_leader, is_empty=empty)

        replicas.leadership_listeners.append(leadership_changed)

        def transaction_ended(tp, producer_id: int, committed: bool) -> None:
            if tp.topic == OFFSETS_TOPIC:
                coordinator.complete_transaction(tp.partition, producer_id, committed)

        replicas.marker_listeners.append(transaction_ended)
        return coordinator

    def _transaction_coordinator(self, controller, replicas, metadata, groups, producer_ids, cluster_mode: bool) -> TransactionCoordinator:
        config = self.config
        partitions = config["transaction.state.log.num.partitions"]
        replication = config["transaction.state.log.replication.factor"]
        min_isr = min(config["transaction.state.log.min.isr"], replication) if cluster_mode else 1
        topic_configs = {
            "cleanup.policy": "compact", "compression.type": "uncompressed", "unclean.leader.election.enable": "false",
            "min.insync.replicas": str(min_isr), "segment.bytes": str(config["transaction.state.log.segment.bytes"]),
        }
        commit_timeout_s = config["offsets.commit.timeout.ms"] / 1000
        store = CoordinatorLog(
            TRANSACTION_STATE_TOPIC,
            partitions,
            self.clock,
            ensure_topic=lambda: controller.ensure_internal_topic(
                TRANSACTION_STATE_TOPIC, partitions, topic_configs, replication
            ).partitions,
            append=lambda tp, batch: replicas.append_records(tp, batch, required_acks=-1),
            read_batches=replicas.read_batches,
            topic_exists=lambda: record.partitions if (record := controller.topic(TRANSACTION_STATE_TOPIC)) else None,
            wait_committed=lambda tp, offset: replicas.wait_for_high_watermark(tp, offset, commit_timeout_s),
        )

        def leader_of(tp: TopicPartition) -> Leader | None:
            image = metadata.image
            registration = image.partition(tp)
            broker = image.brokers.get(registration.leader) if registration is not None else None
            endpoint = broker.endpoint(config.inter_broker_listener_name) if broker is not None else None
            if registration is not None and registration.leader == config.node_id:
                return Leader(config.node_id, "", 0)
            return Leader(broker.node_id, endpoint.host, endpoint.port) if endpoint is not None else None

        channel = TransactionChannel(
            config.node_id,
            security=self._inter_broker_security,
            leader_of=leader_of,
            topic_exists=lambda topic: controller.topic(topic) is not None,
            write_local=lambda tp, producer_id, epoch, committed, coordinator_epoch: replicas.write_txn_marker(
                tp, producer_id, epoch, committed, coordinator_epoch, commit_timeout_s),
        )
        coordinator = TransactionCoordinator(
            store,
            TransactionConfig(
                max_timeout_ms=config["transaction.max.timeout.ms"],
                id_expiration_ms=config["transactional.id.expiration.ms"],
            ),
            self.clock,
            next_producer_id=producer_ids.next_producer_id,
            partition_exists=lambda tp: replicas.partition(tp) is not None or metadata.image.partition(tp) is not None,
            offsets_partition_for=lambda group_id: TopicPartition(OFFSETS_TOPIC, groups.store.partition_for(group_id)),
            channel=channel,
            coordinator_of=lambda transactional_id: leader_of(
                TopicPartition(TRANSACTION_STATE_TOPIC, store.partition_for(transactional_id))),
        )

        def leadership_changed(partition, is_leader: bool) -> None:
            tp = partition.topic_partition
            if tp.topic == TRANSACTION_STATE_TOPIC:
                empty = partition.log_end_offset <= partition.log_start_offset
                coordinator.on_leadership_change(tp.partition, is_leader, partition.leader_epoch, is_empty=empty)

        replicas.leadership_listeners.append(leadership_changed)
        return coordinator

    def _release_parked_requests(self) -> None:
        """On shutdown: parked fetches answer now, parked joins and syncs answer COORDINATOR_NOT_AVAILABLE."""
        if self.replicas is not None:
            self.replicas.waiters.close()
        if self.groups is not None:
            self.groups.shutdown()
        if self.transactions is not None:
            self.transactions.shutdown()

    async def _every(self, interval_ms: int, job) -> None:
        """Run a coordinator's periodic job (aborting timed-out transactions, expiring ids)."""
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                await job()
            except Exception:
                log.exception("periodic %s failed", getattr(job, "__name__", job))

    async def _expire_offsets(self, interval_ms: int) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            await self.groups.expire_offsets()

    async def _enforce_retention(self, interval_ms: int) -> None:
        """Roll old active segments and delete segments past retention, off the event loop."""
        while True:
            await asyncio.sleep(interval_ms / 1000)
            if await asyncio.to_thread(self.log_manager.run_retention, self.clock.now_ms()):
                await asyncio.to_thread(self.replicas.checkpoint_all)

    def _uncleanable_offset(self, tp: TopicPartition) -> int | None:
        """The cleaner stays below the last stable offset: what is not yet on every in-sync
        replica, or in a transaction still open, is not compacted."""
        partition = self.replicas.partition(tp)
        return partition.last_stable_offset if partition is not None else None

    async def _clean_logs(self, cleaner: LogCleaner, backoff_ms: int) -> None:
        """Compaction, one pass at a time in a worker thread; produce and fetch go on meanwhile."""
        while True:
            await asyncio.sleep(max(backoff_ms, 10) / 1000)
            try:
                await asyncio.to_thread(cleaner.clean_once, self.clock.now_ms())
            except Exception:
                log.exception("log cleaner pass failed; retrying after %d ms", backoff_ms)

    async def _checkpoint_offsets(self, interval_ms: int) -> None:
        """High watermarks every replica.high.watermark.checkpoint.interval.ms; recovery points
        and log start offsets at least every minute."""
        interval_s = max(interval_ms, 10) / 1000
        every = max(int(RECOVERY_CHECKPOINT_INTERVAL_S / interval_s), 1)
        rounds = 0
        while True:
            await asyncio.sleep(interval_s)
            rounds += 1
            if rounds % every == 0:
                await asyncio.to_thread(self.replicas.checkpoint_all)
            else:
                await asyncio.to_thread(self.replicas.checkpoint_high_watermarks)

    async def _flush_periodically(self, flush_ms: int) -> None:
        """Time-based fsync (`flush.ms`/`log.flush.interval.ms`); checked at least every second,
        also when only a topic sets flush.ms (Kafka needs its scheduler interval set for that)."""
        interval_s = max(min(flush_ms, FLUSH_CHECK_INTERVAL_MS), 10) / 1000
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.log_manager.flush_dirty, self.clock.now_ms())

    async def stop(self) -> None:
        data_untouched = self.log_manager is None  # a refused start: leave the dirs as they were
        if self.membership is not None and self.membership.registration is not None:
            if self.fetchers is not None:
                await self.fetchers.stop()  # before the controller takes us out of the ISRs
            await self.membership.controlled_shutdown(self.config.controlled_shutdown_timeout_s)
        if self.operator_endpoints is not None:
            await self.operator_endpoints.stop()
        for server in self.servers:
            await server.stop()
        for timer in self._timers:
            timer.cancel()
        for timer in self._timers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await timer
        if self.transactions is not None:
            self.transactions.shutdown()
            await self.transactions.channel.close()
        if self.fetchers is not None:
            await self.fetchers.stop()
        if self.membership is not None:
            await self.membership.stop()
        if self._watcher is not None:
            self._watcher.stop()
        if self._zk_store is not None:
            try:  # our ephemeral nodes go with the session; an unreachable ZooKeeper must not hold us
                await asyncio.wait_for(asyncio.to_thread(self._zk_store.stop), 5)
            except asyncio.TimeoutError:
                log.warning("ZooKeeper did not confirm the end of our session; stopping anyway")
            self._zk_store = None
        if self.log_manager is not None:
            await self.replicas.stop_creating()
            await asyncio.to_thread(self.replicas.checkpoint_high_watermarks)
            await asyncio.to_thread(self.log_manager.shutdown)
            self.log_manager = None
            log.info("odradek stopped cleanly")
        release_all(self._dir_locks, discard_created=data_untouched)
        self._dir_locks = []


# Why a broker refuses to start: each carries one line for the operator.
REFUSALS = (LogDirError, MetadataStoreError, OSError, ConfigError)


def refusal_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror if error.filename is None else f"{error.strerror}: {error.filename}"
    return str(error)


def _open_metadata_store(log_dirs: list[Path], config: BrokerConfig) -> LocalMetadataStore:
    """The metadata store of the first log dir, refusing dirs that belong to another cluster.

    A dir whose meta.properties names a cluster while no odradek metadata exists was written by
    another broker (Apache Kafka, or an odradek whose metadata is gone): refused, never adopted,
    unless `cluster.id` is set to that id on purpose."""
    recorded = LogManager.recorded_cluster_ids(log_dirs, config.node_id)
    wanted = config["cluster.id"]
    if not LocalMetadataStore.exists(log_dirs[0]):
        for log_dir, cluster_id in recorded.items():
            if cluster_id != wanted:
                raise LogDirError(
                    f"log dir {log_dir} belongs to cluster {cluster_id} (its meta.properties) but holds no odradek "
                    f"metadata ({LocalMetadataStore.FILE_NAME} in {log_dirs[0]}): it was written by another broker; "
                    "odradek will not take it over. Point log.dirs at an empty directory"
                )
    store = LocalMetadataStore(log_dirs[0], cluster_id=wanted)
    for log_dir, cluster_id in recorded.items():
        if cluster_id != store.cluster_id:
            raise LogDirError(
                f"the cluster id {store.cluster_id} (in {store.path}) does not match cluster id {cluster_id} "
                f"stored in {log_dir / 'meta.properties'}: that log dir belongs to another cluster"
            )
    return store


def _open_zookeeper_store(log_dirs: list[Path], config: BrokerConfig) -> ZkMetadataStore:
    """Connect to ZooKeeper and learn (or set) the cluster id; refuse log dirs of another cluster
    (Kafka's InconsistentClusterIdException)."""
    from odradek.cluster.zk_store import ZkMetadataStore

    recorded = LogManager.recorded_cluster_ids(log_dirs, config.node_id)
    connection_timeout = config["zookeeper.connection.timeout.ms"] or config["zookeeper.session.timeout.ms"]
    store = ZkMetadataStore(
        config["zookeeper.connect"],
        session_timeout_ms=config["zookeeper.session.timeout.ms"],
        connection_timeout_ms=connection_timeout,
    )
    store.start()
    try:
        store.ensure_cluster_id(config["cluster.id"] or next(iter(recorded.values()), None), _new_cluster_id)
        for log_dir, cluster_id in recorded.items():
            if cluster_id != store.cluster_id:
                raise LogDirError(
                    f"the cluster id {store.cluster_id} in ZooKeeper ({config['zookeeper.connect']}) does not match "
                    f"cluster id {cluster_id} stored in {log_dir / 'meta.properties'}: the broker is trying to join "
                    "the wrong cluster; zookeeper.connect may be wrong"
                )
    except BaseException:
        store.stop()
        raise
    return store


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_broker(config: BrokerConfig) -> int:
    """Run until SIGTERM or SIGINT; return the process exit code."""

    async def main() -> int:
        runtime = BrokerRuntime(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runtime.stop_requested.set)
        loop.add_signal_handler(signal.SIGUSR1, _log_tasks)
        try:
            await runtime.start()
        except REFUSALS as error:
            log.error("cannot start: %s", refusal_line(error))
            await runtime.stop()
            return 1
        await runtime.stop_requested.wait()
        log.info("Shutting down")
        await runtime.stop()
        return 0

    _raise_open_file_limit()
    # `kill -3` prints every thread's stack (a JVM broker's thread dump), even when the event
    # loop is stuck; `kill -USR1` logs what every asyncio task is waiting on.
    faulthandler.register(signal.SIGQUIT, all_threads=True)
    loop = _new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def _raise_open_file_limit() -> None:
    """Segments and connections hold descriptors: take the soft open-file limit up to the hard
    one (the soft limit is often 1,024): thousands of partitions need them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warning("Could not raise the open-file limit from %d to %d: %s", soft, target, error)


def _log_tasks() -> None:
    """SIGUSR1: where every asyncio task of the broker is waiting (for a broker that will not stop)."""
    out = io.StringIO()
    tasks = asyncio.all_tasks()
    for task in tasks:
        task.print_stack(limit=8, file=out)
    log.warning("%d asyncio tasks:\n%s", len(tasks), out.getvalue())


class Broker:
    """An odradek broker inside this Python process, on its own thread and event loop.

        with odradek.Broker(tmp_path) as broker:
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers})

    `log_dir=None` keeps the data in a temporary directory removed on stop; `port=0` picks a free port.
    `config` takes any server.properties keys.
    """

    def __init__(
        self,
        log_dir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: Mapping[str, str] | None = None,
    ) -> None:
        self._temporary_dir = None if log_dir is not None else tempfile.mkdtemp(prefix="odradek-")
        self.log_dir = Path(log_dir if log_dir is not None else self._temporary_dir)
        props = {"listeners": f"PLAINTEXT://{host}:{port}", "log.dirs": str(self.log_dir)}
        props.update(config or {})
        self.config, warnings = BrokerConfig.from_properties(props)
        for warning in warnings:
            log.warning("%s", warning)
        self.host = host
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runtime: BrokerRuntime | None = None
        self._stop_requested: asyncio.Event | None = None
        self.port: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise RuntimeError("the broker is not running")
        return f"{self.host}:{self.port}"

    def start(self) -> "Broker":
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = _new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._runtime = BrokerRuntime(self.config)
                self._stop_requested = asyncio.Event()
                try:
                    await self._runtime.start()
                except BaseException as error:
                    failure.append(error)
                    started.set()
                    await self._runtime.stop()
                    return
                self.port = self._runtime.bound_port
                started.set()
                await self._stop_requested.wait()
                await self._runtime.stop()

            try:
                loop.run_until_complete(main())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="odradek-broker", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            self._cleanup()
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
        self._thread.join()
        self._thread = None
        self.port = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def __aenter__(self) -> "Broker":
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info) -> None:
        await asyncio.to_thread(self.stop)
