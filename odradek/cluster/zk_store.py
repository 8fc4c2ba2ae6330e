"""Cluster metadata in Apache ZooKeeper, in Kafka's ZooKeeper-mode layout and JSON shapes.

    /cluster/id                                   {"version":"1","id":"<cluster id>"}
    /controller_epoch                             "<epoch>"
    /controller                    (ephemeral)    {"version":1,"brokerid":<id>,"timestamp":"<ms>"}
    /brokers/ids/<id>              (ephemeral)    {"version":5,"host":..,"port":..,"endpoints":[..],...}
    /brokers/topics/<t>                           {"version":3,"partitions":{"0":[1,2,3]},"topic_id":"..",...}
    /brokers/topics/<t>/partitions/<p>/state      {"version":1,"leader":1,"leader_epoch":0,"isr":[1,2,3],"controller_epoch":1}
    /config/topics/<t>, /config/brokers/<id|<default>>   {"version":1,"config":{..}}
    /config/users/<u>[/clients/<c>], /config/clients/<c>, /config/ips/<ip>   the same shape: client
                                                  quotas (a user's node also holds its SCRAM credentials)
    /config/changes/config_change_<seq>           {"version":2,"entity_path":"topics/<t>"}
    /kafka-acl/<Type>/<name>, /kafka-acl-extended/prefixed/<Type>/<name>   {"version":1,"acls":[..]}
    /delegation_token/tokens/<id>                 {"version":3,"owner":"User%3Aalice","renewers":[..],"issueTimestamp":..,...}
    /delegation_token/token_changes/token_change_<seq>   "<token id>"
    /admin/delete_topics/<t>                      (a topic to delete; the controller removes it after)
    /admin/reassign_partitions                    {"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]}]}
    /latest_producer_id_block                     {"version":1,"broker":<id>,"block_start":"<n>","block_end":"<m>"}

so zkCli.sh shows an operator what Kafka would. The partition state's znode version is the
partition epoch: the leader's ISR changes and the controller's elections are conditional on it,
and the controller's writes also on the version of /controller_epoch, so a fenced controller or a
deposed leader can never overwrite newer state. Writes are blocking kazoo calls: call them from a
worker thread, never on the event loop.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError as ZkBadVersion
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.recipe.watchers import ChildrenWatch
from kazoo.retry import KazooRetry

from odradek.cluster.metadata import BrokerRegistration, Endpoint
from odradek.cluster.store import BadVersionError, MetadataStoreError, MetadataStoreUnavailableError, TopicRecord
from odradek.security.quotas import CLIENT_ID, CLIENT_QUOTA_KEYS, IP, USER

log = logging.getLogger(__name__)

RECONNECT_MAX_DELAY_S = 1.0

CLUSTER_ID = "/cluster/id"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
BROKER_IDS = "/brokers/ids"
BROKER_TOPICS = "/brokers/topics"
CONFIG_TOPICS = "/config/topics"
CONFIG_BROKERS = "/config/brokers"
CONFIG_GROUPS = "/config/groups"
CONFIG_USERS = "/config/users"
CONFIG_CLIENTS = "/config/clients"
CONFIG_IPS = "/config/ips"
ACL_LITERAL = "/kafka-acl"
ACL_PREFIXED = "/kafka-acl-extended/prefixed"
ACL_CHANGES = "/kafka-acl-changes"
ACL_EXTENDED_CHANGES = "/kafka-acl-extended-changes"
CONFIG_CHANGES = "/config/changes"
DELEGATION_TOKENS = "/delegation_token/tokens"
DELEGATION_TOKEN_CHANGES = "/delegation_token/token_changes"
DELETE_TOPICS = "/admin/delete_topics"
REASSIGN_PARTITIONS = "/admin/reassign_partitions"
PRODUCER_ID_BLOCK = "/latest_producer_id_block"
DEFAULT_BROKER_ENTITY = "<default>"
DEFAULT_ENTITY = "<default>"  # the node of a default quota entity

# Kafka creates these at start-up; so do we (an operator's zkCli.sh sees the familiar tree).
PERSISTENT_PATHS = (
    "/consumers", BROKER_IDS, BROKER_TOPICS, "/brokers/seqid", CONFIG_CHANGES, CONFIG_TOPICS,
    CONFIG_CLIENTS, CONFIG_USERS, CONFIG_BROKERS, CONFIG_IPS, DELETE_TOPICS,
    "/isr_change_notification", "/log_dir_event_notification", "/cluster", "/admin",
)


def topic_path(topic: str) -> str:
    return f"{BROKER_TOPICS}/{topic}"


def partition_state_path(topic: str, partition: int) -> str:
    return f"{BROKER_TOPICS}/{topic}/partitions/{partition}/state"


def encode_topic_id(topic_id: uuid.UUID) -> str:
    """Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, no padding."""
    return base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")


def decode_topic_id(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


@dataclass(frozen=True)
class PartitionState:
    """A partition's leadership as stored at .../partitions/<p>/state, with its znode version."""

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    version: int = -1  # znode version: the partition epoch

    def encode(self) -> bytes:
        return json.dumps({
            "controller_epoch": self.controller_epoch, "leader": self.leader, "version": 1,
            "leader_epoch": self.leader_epoch, "isr": list(self.isr),
        }).encode()

    @classmethod
    def decode(cls, data: bytes, version: int) -> "PartitionState":
        value = json.loads(data)
        return cls(int(value["leader"]), int(value["leader_epoch"]), tuple(int(b) for b in value["isr"]),
                   int(value.get("controller_epoch", 0)), version)


def encode_broker(registration: BrokerRegistration, security_protocols: dict[str, str]) -> bytes:
    first = registration.endpoints[0] if registration.endpoints else None
    value = {
        "listener_security_protocol_map": {e.listener: security_protocols.get(e.listener, e.security_protocol) for e in registration.endpoints},
        "endpoints": [f"{e.listener}://{e.host}:{e.port}" for e in registration.endpoints],
        "jmx_port": -1,
        "features": {},
        "host": first.host if first else "",
        "timestamp": str(int(time.time() * 1000)),
        "port": first.port if first else -1,
        "version": 5,
    }
    if registration.rack:
        value["rack"] = registration.rack
    return json.dumps(value).encode()


def decode_broker(node_id: int, data: bytes) -> BrokerRegistration:
    value = json.loads(data)
    protocols = value.get("listener_security_protocol_map", {})
    endpoints = []
    for text in value.get("endpoints", []):
        listener, _, address = text.partition("://")
        host, _, port = address.rpartition(":")
        endpoints.append(Endpoint(listener, host.strip("[]"), int(port), protocols.get(listener, "PLAINTEXT")))
    return BrokerRegistration(node_id, tuple(endpoints), rack=value.get("rack"))


def encode_assignment(record: TopicRecord) -> bytes:
    return json.dumps({
        "partitions": {str(p): list(replicas) for p, replicas in enumerate(record.assignment)},
        "topic_id": encode_topic_id(record.topic_id),
        "adding_replicas": {},
        "removing_replicas": {},
        "version": 3,
    }).encode()


def decode_assignment(name: str, data: bytes, configs: dict[str, str]) -> TopicRecord:
    value = json.loads(data)
    partitions = {int(p): tuple(int(b) for b in replicas) for p, replicas in value["partitions"].items()}
    assignment = tuple(partitions[p] for p in sorted(partitions))
    topic_id = decode_topic_id(value["topic_id"]) if value.get("topic_id") else uuid.uuid5(uuid.NAMESPACE_DNS, name)
    replication_factor = len(assignment[0]) if assignment else 0
    return TopicRecord(name, topic_id, len(assignment), replication_factor, configs, assignment)


def encode_config(configs: dict[str, str]) -> bytes:
    return json.dumps({"version": 1, "config": dict(configs)}).encode()


def decode_config(data: bytes | None) -> dict[str, str]:
    if not data:
        return {}
    return {str(k): str(v) for k, v in json.loads(data).get("config", {}).items()}


class ZkMetadataStore:
    """The MetadataStore of cluster mode (see store.py), plus what only a cluster has:
    broker registration, the controller election, partition states, deletion markers."""

    def __init__(self, connect: str, *, session_timeout_ms: int, connection_timeout_ms: int) -> None:
        hosts, _, chroot = connect.partition("/")
        self.connect = connect
        self._hosts = hosts
        self._chroot = "/" + chroot.strip("/") if chroot.strip("/") else ""
        self._timeout_s = connection_timeout_ms / 1000
        # kazoo's default reconnect backoff doubles up to an hour: after ZooKeeper has been away
        # for a minute, a broker would wait minutes more (and lose its session) once it is back.
        # Retry at least every second, as ZooKeeper's own client does.
        reconnect = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_jitter=0.2, max_delay=RECONNECT_MAX_DELAY_S)
        self.client = KazooClient(hosts=connect, timeout=session_timeout_ms / 1000, connection_retry=reconnect)
        self.cluster_id = ""
        self._listeners: list = []
        self._connected = threading.Event()
        self.client.add_listener(self._connection_changed)

    def _connection_changed(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()

    def wait_until_connected(self) -> None:
        """Block (in a worker thread) until ZooKeeper is reachable, at most
        zookeeper.connection.timeout.ms; MetadataStoreUnavailableError after that. kazoo would
        otherwise hold a call until the connection returns, however long that takes."""
        if not self._connected.wait(self._timeout_s):
            raise MetadataStoreUnavailableError(
                f"ZooKeeper at {self.connect} has not been reachable for {self._timeout_s:g} s"
            )

    # --- connection ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (creating the chroot and Kafka's persistent paths); MetadataStoreError if
        ZooKeeper is not reachable within zookeeper.connection.timeout.ms."""
        if self._chroot:
            root = KazooClient(hosts=self._hosts, timeout=self._timeout_s)
            try:
                root.start(timeout=self._timeout_s)
                root.ensure_path(self._chroot)
            except Exception as exc:  # noqa: BLE001 - kazoo raises its own timeout type
                raise MetadataStoreError(f"cannot reach ZooKeeper at {self._hosts}: {exc or type(exc).__name__}") from None
            finally:
                root.stop()
                root.close()
        try:
            self.client.start(timeout=self._timeout_s)
        except Exception as exc:  # noqa: BLE001
            raise MetadataStoreError(f"cannot reach ZooKeeper at {self.connect}: {exc or type(exc).__name__}") from None
        for path in PERSISTENT_PATHS:
            self.client.ensure_path(path)

    def stop(self) -> None:
        try:
            self.client.stop()
        finally:
            self.client.close()

    def ensure_cluster_id(self, wanted: str | None, new_id) -> str:
        """The cluster's id from /cluster/id, created from `wanted` (or a new one) by the first broker."""
        try:
            data, _ = self.client.get(CLUSTER_ID)
        except NoNodeError:
            candidate = wanted or new_id()
            try:
                self.client.create(CLUSTER_ID, json.dumps({"version": "1", "id": candidate}).encode(), makepath=True)
            except NodeExistsError:
                pass
            data, _ = self.client.get(CLUSTER_ID)
        self.cluster_id = json.loads(data)["id"]
        if wanted and wanted != self.cluster_id:
            raise MetadataStoreError(
                f"cluster.id {wanted} does not match the cluster id {self.cluster_id} stored in ZooKeeper at "
                f"{self.connect}{CLUSTER_ID}: zookeeper.connect may point at another cluster"
            )
        return self.cluster_id

    # --- brokers and the controller ---------------------------------------------------------

    def register_broker(self, registration: BrokerRegistration, security_protocols: dict[str, str], *,
                        wait_s: float) -> None:
        """Create the ephemeral /brokers/ids/<id>. A node left by this broker's previous,
        crashed session disappears within the session timeout: wait for it up to `wait_s`."""
        path = f"{BROKER_IDS}/{registration.node_id}"
        data = encode_broker(registration, security_protocols)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.client.create(path, data, ephemeral=True, makepath=True)
                return
            except NodeExistsError:
                try:
                    _, stat = self.client.get(path)
                except NoNodeError:
                    continue
                if stat.ephemeralOwner == self.client.client_id[0]:
                    self.client.set(path, data)
                    return
                if time.monotonic() > deadline:
                    raise MetadataStoreError(
                        f"broker id {registration.node_id} is registered in ZooKeeper by another live session: "
                        "another broker uses this broker.id"
                    ) from None
                time.sleep(0.2)

    def try_become_controller(self, node_id: int) -> int | None:
        """Create the ephemeral /controller; on success bump /controller_epoch (conditionally) and
        return the new epoch, else None (another broker is controller)."""
        try:
            self.client.create(
                CONTROLLER, json.dumps({"version": 1, "brokerid": node_id, "timestamp": str(int(time.time() * 1000))}).encode(),
                ephemeral=True,
            )
        except NodeExistsError:
            return None
        while True:
            try:
                data, stat = self.client.get(CONTROLLER_EPOCH)
                epoch = int(data or b"0") + 1
                self.client.set(CONTROLLER_EPOCH, str(epoch).encode(), version=stat.version)
                self.controller_epoch_version = stat.version + 1
                return epoch
            except NoNodeError:
                try:
                    self.client.create(CONTROLLER_EPOCH, b"1")
                    self.controller_epoch_version = 0
                    return 1
                except NodeExistsError:
                    continue
            except ZkBadVersion:
                continue

    def live_broker_ids(self) -> set[int]:
        """The brokers registered now (the watchers' view can be a moment behind)."""
        return {int(child) for child in self.client.get_children(BROKER_IDS)}

    def controller_id(self) -> int:
        try:
            data, _ = self.client.get(CONTROLLER)
        except NoNodeError:
            return -1
        return int(json.loads(data)["brokerid"])

    # --- topics (the MetadataStore interface) --------------------------------------------------

    def topics(self) -> dict[str, TopicRecord]:
        records = {}
        for name in self.client.get_children(BROKER_TOPICS):
            try:
                data, _ = self.client.get(topic_path(name))
            except NoNodeError:
                continue
            records[name] = decode_assignment(name, data, self.topic_configs(name))
        return records

    def topic_configs(self, name: str) -> dict[str, str]:
        try:
            data, _ = self.client.get(f"{CONFIG_TOPICS}/{name}")
        except NoNodeError:
            return {}
        return decode_config(data)

    def topic_version(self, name: str) -> int:
        stat = self.client.exists(topic_path(name))
        return -1 if stat is None else stat.version

    def put_topic(self, record: TopicRecord, *, expected_version: int | None = None) -> int:
        """Write a topic's configs then its assignment (the assignment last: it is what makes the
        topic exist for the controller). expected_version -1 means "create, must not exist"."""
        self._write_configs(f"{CONFIG_TOPICS}/{record.name}", record.configs, f"topics/{record.name}")
        data = encode_assignment(record)
        try:
            if expected_version is None or expected_version < 0:
                if expected_version == -1 or not self.client.exists(topic_path(record.name)):
                    self.client.create(topic_path(record.name), data, makepath=True)
                    return 0
                return self.client.set(topic_path(record.name), data).version
            return self.client.set(topic_path(record.name), data, version=expected_version).version
        except NodeExistsError:
            raise BadVersionError(f"topic {record.name} already exists in ZooKeeper") from None
        except ZkBadVersion:
            raise BadVersionError(f"topic {record.name} changed in ZooKeeper meanwhile") from None

    def set_topic_configs(self, name: str, configs: dict[str, str]) -> None:
        self._write_configs(f"{CONFIG_TOPICS}/{name}", configs, f"topics/{name}")

    def remove_topic(self, name: str, *, expected_version: int | None = None) -> None:
        """Ask the controller to delete a topic (Kafka's /admin/delete_topics/<t> marker)."""
        try:
            self.client.create(f"{DELETE_TOPICS}/{name}", b"", makepath=True)
        except NodeExistsError:
            pass

    def topics_to_delete(self) -> list[str]:
        return sorted(self.client.get_children(DELETE_TOPICS))

    def delete_topic_nodes(self, name: str) -> None:
        """The controller's last step of a deletion: the topic's nodes, then its marker. The
        partitions' nodes go a few hundred to a transaction (kazoo's recursive delete takes two
        round trips per node: 40 s for a topic of 2,000 partitions here)."""
        parent = f"{topic_path(name)}/partitions"
        try:
            partitions = self.client.get_children(parent)
        except NoNodeError:
            partitions = []
        listings = [(f"{parent}/{p}", self.client.get_children_async(f"{parent}/{p}")) for p in partitions]
        paths = []
        for path, listing in listings:
            try:
                paths += [f"{path}/{child}" for child in listing.get()]
            except NoNodeError:
                continue
            paths.append(path)
        for start in range(0, len(paths), 2 * STATES_PER_TRANSACTION):
            transaction = self.client.transaction()
            for path in paths[start : start + 2 * STATES_PER_TRANSACTION]:
                transaction.delete(path)
            transaction.commit()  # a failure (a node already gone) leaves the rest to the recursive delete
        self.client.delete(topic_path(name), recursive=True)
        try:
            self.client.delete(f"{CONFIG_TOPICS}/{name}")
        except NoNodeError:
            pass
        try:
            self.client.delete(f"{DELETE_TOPICS}/{name}")
        except NoNodeError:
            pass

    def watch(self, listener) -> None:
        self._listeners.append(listener)

    # --- partition states ---------------------------------------------------------------------

    def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        try:
            data, stat = self.client.get(partition_state_path(topic, partition))
        except NoNodeError:
            return None
        return PartitionState.decode(data, stat.version)

    def create_partition_states(self, topic: str, states: dict[int, PartitionState]) -> list[int]:
        """The controller's first election of new partitions of a topic, a few hundred to a
        transaction: ZooKeeper syncs its log once per write, and one write per partition made a
        topic of 2,000 partitions wait 40 s for its leaders. Each transaction holds only while
        this broker is the controller and the topic still exists (a pass deciding on an image from
        before its deletion must not bring its node back). Returns the partitions created; where a
        transaction fails, its partitions are tried one at a time (one state may exist already)."""
        created = []
        ordered = sorted(states.items())
        for start in range(0, len(ordered), STATES_PER_TRANSACTION):
            chunk = ordered[start : start + STATES_PER_TRANSACTION]
            if self._create_states(topic, chunk):
                created += [partition for partition, _ in chunk]
                continue
            if len(chunk) == 1 or not self.client.exists(topic_path(topic)):
                continue
            created += [partition for partition, state in chunk if self._create_states(topic, [(partition, state)])]
        return created

    def _create_states(self, topic: str, states: list[tuple[int, PartitionState]]) -> bool:
        """One transaction creating these partitions' state nodes (and their parents)."""
        parent = f"{topic_path(topic)}/partitions"
        try:
            present = set(self.client.get_children(parent))
        except NoNodeError:
            present = None
        transaction = self.client.transaction()
        transaction.check(CONTROLLER_EPOCH, self.controller_epoch_version)
        transaction.check(topic_path(topic), -1)
        if present is None:
            transaction.create(parent)
        for partition, state in states:
            if str(partition) not in (present or ()):
                transaction.create(f"{parent}/{partition}")
            transaction.create(partition_state_path(topic, partition), state.encode())
        return _committed(transaction.commit())

    def update_partition_states(self, topic: str, updates: dict[int, tuple[PartitionState, int]]) -> dict[int, int | None]:
        """update_partition_state(as_controller=True) for many partitions of a topic, a few hundred
        to a transaction; partition -> its new version, or None where it moved on meanwhile."""
        versions: dict[int, int | None] = {}
        ordered = sorted(updates.items())
        for start in range(0, len(ordered), STATES_PER_TRANSACTION):
            chunk = ordered[start : start + STATES_PER_TRANSACTION]
            if len(chunk) > 1:
                transaction = self.client.transaction()
                transaction.check(CONTROLLER_EPOCH, self.controller_epoch_version)
                for partition, (state, expected_version) in chunk:
                    transaction.set_data(partition_state_path(topic, partition), state.encode(), version=expected_version)
                results = transaction.commit()
                if _committed(results):
                    versions.update((partition, stat.version) for (partition, _), stat in zip(chunk, results[1:]))
                    continue
            # One moved on meanwhile (or we are no longer the controller): one at a time.
            for partition, (state, expected_version) in chunk:
                versions[partition] = self.update_partition_state(topic, partition, state, expected_version,
                                                                  as_controller=True)
        return versions

    def update_partition_state(self, topic: str, partition: int, state: PartitionState, expected_version: int, *,
                               as_controller: bool) -> int | None:
        """Conditional write of a partition's leadership: the new partition epoch (znode version),
        or None if the state or (for the controller) /controller_epoch moved on meanwhile."""
        path = partition_state_path(topic, partition)
        if not as_controller:
            try:
                return self.client.set(path, state.encode(), version=expected_version).version
            except (ZkBadVersion, NoNodeError):
                return None
        transaction = self.client.transaction()
        transaction.check(CONTROLLER_EPOCH, self.controller_epoch_version)
        transaction.set_data(path, state.encode(), version=expected_version)
        results = transaction.commit()
        if not _committed(results):
            return None
        return results[1].version

    # --- configs and producer ids -------------------------------------------------------------

    def _configs_under(self, parent: str) -> dict[str, dict[str, str]]:
        """The non-empty configs of every entity znode under `parent`, by znode name."""
        configs = {}
        try:
            entities = self.client.get_children(parent)
        except NoNodeError:
            return configs
        for entity in entities:
            try:
                data, _ = self.client.get(f"{parent}/{entity}")
            except NoNodeError:
                continue
            values = decode_config(data)
            if values:
                configs[entity] = values
        return configs

    def broker_configs(self) -> dict[str, dict[str, str]]:
        return {"" if entity == DEFAULT_BROKER_ENTITY else entity: values
                for entity, values in self._configs_under(CONFIG_BROKERS).items()}

    def set_broker_configs(self, entity: str, configs: dict[str, str]) -> None:
        name = entity or DEFAULT_BROKER_ENTITY
        self._write_configs(f"{CONFIG_BROKERS}/{name}", configs, f"brokers/{name}")

    def group_configs(self) -> dict[str, dict[str, str]]:
        return {urllib.parse.unquote(node): values for node, values in self._configs_under(CONFIG_GROUPS).items()}

    def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None:
        # A group id may hold any character; its znode name is percent-encoded ('/', '.', '..').
        node = urllib.parse.quote(group_id, safe="").replace(".", "%2E")
        self._write_configs(f"{CONFIG_GROUPS}/{node}", configs, f"groups/{node}")

    def user_configs(self) -> dict[str, dict[str, str]]:
        """Users' SCRAM credentials: their nodes' configs without the quota keys."""
        found = {}
        for node, values in self._configs_under(CONFIG_USERS).items():
            credentials = {key: value for key, value in values.items() if key not in CLIENT_QUOTA_KEYS}
            if credentials and node != DEFAULT_ENTITY:
                found[urllib.parse.unquote(node)] = credentials
        return found

    def set_user_configs(self, user: str, configs: dict[str, str]) -> None:
        node = _sanitized(user)
        self._replace_some(f"{CONFIG_USERS}/{node}", f"users/{node}", configs, lambda key: key not in CLIENT_QUOTA_KEYS)

    def client_quotas(self) -> dict[tuple[tuple[str, str | None], ...], dict[str, str]]:
        found: dict[tuple[tuple[str, str | None], ...], dict[str, str]] = {}
        for node, values in self._configs_under(CONFIG_USERS).items():
            quotas = {key: value for key, value in values.items() if key in CLIENT_QUOTA_KEYS}
            if quotas:
                found[((USER, _entity_name(node)),)] = quotas
        try:
            user_nodes = self.client.get_children(CONFIG_USERS)
        except NoNodeError:
            user_nodes = []
        for user_node in user_nodes:
            for client_node, values in self._configs_under(f"{CONFIG_USERS}/{user_node}/clients").items():
                found[((CLIENT_ID, _entity_name(client_node)), (USER, _entity_name(user_node)))] = values
        for node, values in self._configs_under(CONFIG_CLIENTS).items():
            found[((CLIENT_ID, _entity_name(node)),)] = values
        for node, values in self._configs_under(CONFIG_IPS).items():
            found[((IP, _entity_name(node)),)] = values
        return found

    def set_client_quotas(self, entity: tuple[tuple[str, str | None], ...], values: dict[str, str]) -> None:
        """Kafka's paths: /config/users/<u>, /config/users/<u>/clients/<c>, /config/clients/<c> and
        /config/ips/<ip>, <default> for a default; a user's own quotas share its node with its
        SCRAM credentials, which are kept."""
        names = {kind: DEFAULT_ENTITY if name is None else _sanitized(name) for kind, name in entity}
        if IP in names:
            entity_path = f"ips/{names[IP]}"
        elif USER in names and CLIENT_ID in names:
            entity_path = f"users/{names[USER]}/clients/{names[CLIENT_ID]}"
        elif USER in names:
            path = f"{CONFIG_USERS}/{names[USER]}"
            self._replace_some(path, f"users/{names[USER]}", values, lambda key: key in CLIENT_QUOTA_KEYS)
            return
        else:
            entity_path = f"clients/{names[CLIENT_ID]}"
        self._write_configs(f"/config/{entity_path}", values, entity_path)

    def _replace_some(self, path: str, entity_path: str, values: dict[str, str], owned) -> None:
        """Replace the keys of a config node for which `owned(key)` holds, keeping the others."""
        try:
            data, _ = self.client.get(path)
            current = decode_config(data)
        except NoNodeError:
            current = {}
        kept = {key: value for key, value in current.items() if not owned(key)}
        self._write_configs(path, {**kept, **values}, entity_path)

    # --- ACLs, in Kafka's layout: /kafka-acl/<Type>/<name>, /kafka-acl-extended/prefixed/<Type>/<name> ---

    def acls(self) -> dict[tuple[str, str, str], list[dict]]:
        found: dict[tuple[str, str, str], list[dict]] = {}
        for root, pattern in ((ACL_LITERAL, "LITERAL"), (ACL_PREFIXED, "PREFIXED")):
            try:
                kinds = self.client.get_children(root)
            except NoNodeError:
                continue
            for kind in kinds:
                try:
                    names = self.client.get_children(f"{root}/{kind}")
                except NoNodeError:
                    continue
                for node in names:
                    try:
                        data, _ = self.client.get(f"{root}/{kind}/{node}")
                    except NoNodeError:
                        continue
                    entries = json.loads(data).get("acls", []) if data else []
                    if entries:
                        found[(kind, pattern, urllib.parse.unquote(node))] = entries
        return found

    def set_acls(self, resource: tuple[str, str, str], entries: list[dict]) -> None:
        self.update_acls(resource, lambda _current: entries)

    def update_acls(self, resource: tuple[str, str, str], change) -> None:
        """A conditional write on the resource's znode version, retried on a concurrent change,
        as Kafka's AclAuthorizer updates /kafka-acl; then the change notification."""
        kind, pattern, name = resource
        node = name.replace("%", "%25").replace("/", "%2F")  # raw, as Kafka, unless the name holds a '/'
        path = f"{ACL_LITERAL if pattern == 'LITERAL' else ACL_PREFIXED}/{kind}/{node}"
        while True:
            try:
                data, stat = self.client.get(path)
                current = json.loads(data).get("acls", []) if data else []
            except NoNodeError:
                stat, current = None, []
            entries = change([dict(entry) for entry in current])
            if entries == current:
                return
            try:
                if stat is None:
                    self.client.create(path, json.dumps({"version": 1, "acls": entries}).encode(), makepath=True)
                elif entries:
                    self.client.set(path, json.dumps({"version": 1, "acls": entries}).encode(), version=stat.version)
                else:
                    self.client.delete(path, version=stat.version)
                break
            except (ZkBadVersion, NodeExistsError, NoNodeError):
                continue  # another broker wrote first: apply the change to what it wrote
        if pattern == "LITERAL":
            self.client.create(f"{ACL_CHANGES}/acl_changes_", f"{kind}:{name}".encode(), sequence=True, makepath=True)
        else:
            notice = {"version": 1, "resourceType": kind, "name": name, "patternType": pattern}
            self.client.create(f"{ACL_EXTENDED_CHANGES}/acl_changes_", json.dumps(notice).encode(), sequence=True,
                               makepath=True)

    def watch_acl_changes(self, on_change) -> None:
        """Call `on_change()` (from kazoo's thread) after every ACL change notification."""
        for path in (ACL_CHANGES, ACL_EXTENDED_CHANGES):
            self.client.ensure_path(path)
            self._watch_children(path, on_change)

    def _watch_children(self, path: str, on_change) -> None:
        """Call `on_change()` (from kazoo's thread) whenever `path`'s children change, until closed."""
        def changed(children) -> bool:
            if not self.client.connected and self.client.state == "CLOSED":
                return False
            on_change()
            return True

        ChildrenWatch(self.client, path, changed)

    def _put(self, path: str, data: bytes) -> None:
        """Write a znode, creating it (and its parents) if absent."""
        try:
            self.client.set(path, data)
        except NoNodeError:
            try:
                self.client.create(path, data, makepath=True)
            except NodeExistsError:
                self.client.set(path, data)

    def _write_configs(self, path: str, configs: dict[str, str], entity_path: str) -> None:
        self._put(path, encode_config(configs))
        self.client.create(
            f"{CONFIG_CHANGES}/config_change_", json.dumps({"version": 2, "entity_path": entity_path}).encode(),
            sequence=True, makepath=True,
        )

    def watch_config_changes(self, on_change) -> None:
        """Call `on_change()` (from kazoo's thread) after every /config/changes notification."""
        self._watch_children(CONFIG_CHANGES, on_change)

    # --- delegation tokens, in Kafka's layout ---

    def delegation_tokens(self) -> dict[str, dict]:
        found = {}
        try:
            ids = self.client.get_children(DELEGATION_TOKENS)
        except NoNodeError:
            return found
        for token_id in ids:
            try:
                data, _ = self.client.get(f"{DELEGATION_TOKENS}/{token_id}")
            except NoNodeError:
                continue
            if data:
                found[token_id] = json.loads(data)
        return found

    def set_delegation_token(self, token_id: str, stored: dict | None) -> None:
        """Write or remove the token's node, then Kafka's change notification (its id)."""
        path = f"{DELEGATION_TOKENS}/{token_id}"
        if stored is None:
            try:
                self.client.delete(path)
            except NoNodeError:
                return
        else:
            self._put(path, json.dumps(stored).encode())
        self.client.create(f"{DELEGATION_TOKEN_CHANGES}/token_change_", token_id.encode(), sequence=True, makepath=True)

    def watch_delegation_token_changes(self, on_change) -> None:
        """Call `on_change()` (from kazoo's thread) after every token change notification."""
        self.client.ensure_path(DELEGATION_TOKEN_CHANGES)
        self._watch_children(DELEGATION_TOKEN_CHANGES, on_change)

    def allocate_producer_id_block(self, size: int) -> int:
        """The first id of a new block: a conditional update of /latest_producer_id_block."""
        while True:
            try:
                data, stat = self.client.get(PRODUCER_ID_BLOCK)
            except NoNodeError:
                try:
                    self.client.create(PRODUCER_ID_BLOCK, b"")
                except NodeExistsError:
                    pass
                continue
            start = int(json.loads(data)["block_end"]) + 1 if data else 0
            block = {"version": 1, "broker": -1, "block_start": str(start), "block_end": str(start + size - 1)}
            try:
                self.client.set(PRODUCER_ID_BLOCK, json.dumps(block).encode(), version=stat.version)
                return start
            except ZkBadVersion:
                continue

    # --- reassignments ------------------------------------------------------------------------

    def reassignments(self) -> dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...]]]:
        """(topic, partition) -> (target replicas, replicas before the reassignment began)."""
        try:
            data, _ = self.client.get(REASSIGN_PARTITIONS)
        except NoNodeError:
            return {}
        if not data:
            return {}
        return {
            (entry["topic"], int(entry["partition"])): (
                tuple(int(b) for b in entry["replicas"]),
                tuple(int(b) for b in entry.get("original_replicas", entry["replicas"])),
            )
            for entry in json.loads(data).get("partitions", [])
        }

    def set_reassignments(self, wanted: dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
        """Kafka's /admin/reassign_partitions, plus each entry's original replicas (for listing
        what is being added and removed, and for a cancellation to go back to)."""
        if not wanted:
            try:
                self.client.delete(REASSIGN_PARTITIONS)
            except NoNodeError:
                pass
            return
        data = json.dumps({"version": 1, "partitions": [
            {"topic": topic, "partition": partition, "replicas": list(target), "original_replicas": list(original)}
            for (topic, partition), (target, original) in sorted(wanted.items())
        ]}).encode()
        try:
            self.client.set(REASSIGN_PARTITIONS, data)
        except NoNodeError:
            self.client.create(REASSIGN_PARTITIONS, data, makepath=True)

    def set_assignment(self, record: TopicRecord) -> None:
        """The controller's change of a topic's replica sets (reassignments)."""
        self.client.set(topic_path(record.name), encode_assignment(record))


# Creates per ZooKeeper transaction: each some 200 bytes, well under jute.maxbuffer's 1 MiB.
STATES_PER_TRANSACTION = 500


def _committed(results) -> bool:
    return not any(isinstance(result, Exception) for result in results)


def _sanitized(name: str) -> str:
    """Kafka's Sanitizer: a user or client id URL-encoded, so any name is a valid znode name."""
    return urllib.parse.quote(name, safe="").replace(".", "%2E").replace("*", "%2A")


def _entity_name(node: str) -> str | None:
    """A quota entity's name from its znode name; None for <default>."""
    return None if node == DEFAULT_ENTITY else urllib.parse.unquote(node)
