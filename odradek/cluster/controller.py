"""The controller: topic creation and deletion, placement, topic configs.

In single-node mode this broker is the controller and the only replica of every partition.
It changes the metadata store first (conditional writes on the version it read), then
publishes the new metadata image, then tells the replica manager to create or drop the
partitions, so a crash between the two is repaired at start-up (partitions are created for
every stored topic; directories of topics not stored are set aside as stray, never deleted).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Mapping

from odradek.cluster.metadata import (
    BrokerRegistration,
    MetadataCache,
    MetadataImage,
    PartitionRegistration,
    TopicImage,
)
from odradek.cluster.store import BadVersionError, MetadataStore, TopicRecord
from odradek.config import BrokerConfig, ConfigError, topic_config_defaults, validate_topic_configs
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import validate_topic_name

log = logging.getLogger(__name__)

MAX_PARTITIONS = 100_000


class Controller:
    """Owns topic lifecycle; the replica manager owns the partitions that follow from it.

    Topics are read from the published metadata image; changes go to the store. This class is
    the single node's: it publishes the image itself and creates and drops partitions at once.
    ZkController (cluster mode) places replicas over the live brokers and leaves leadership to
    the elected controller, the image to the ZooKeeper watches and partitions to `apply_image`.
    """

    def __init__(self, store: MetadataStore, replicas, config: BrokerConfig, node_id: int,
                 metadata: MetadataCache | None = None) -> None:
        self.store = store
        self.replicas = replicas
        self.config = config
        self.node_id = node_id
        self.metadata = metadata if metadata is not None else MetadataCache()
        self._defaults = topic_config_defaults(config)
        self._changing = asyncio.Lock()
        self._uncreated: list[TopicRecord] | None = None  # topics a change in run() stored: partitions to create
        self._publish_stored_topics()

    # -- the image (single node) -------------------------------------------------------------

    def _publish_stored_topics(self) -> None:
        self.metadata.publish(
            MetadataImage.build(
                self.store.cluster_id, self.node_id, self.metadata.image.brokers.values(),
                (self._topic_image(record) for record in self.store.topics().values()),
            )
        )

    def _topic_image(self, record: TopicRecord) -> TopicImage:
        """Single node: this broker leads every partition at epoch 0 and is its only ISR member."""
        alone = (self.node_id,)
        partitions = tuple(
            PartitionRegistration(
                replicas=record.replicas_of(index, alone), isr=alone, leader=self.node_id, leader_epoch=0,
            )
            for index in range(record.partitions)
        )
        return TopicImage(record.name, record.topic_id, partitions, dict(record.configs))

    def register_broker(self, registration: BrokerRegistration) -> None:
        """This broker's endpoints, once its listeners are bound."""
        self.metadata.publish(self.metadata.image.with_broker(registration))

    def _stored(self, record: TopicRecord, *, created: bool) -> None:
        """Write a topic (conditional on the version we know), publish it, create its partitions
        (inside run(), once the change has returned: see run)."""
        self.store.put_topic(record, expected_version=-1 if created else self.store.topic_version(record.name))
        self.metadata.publish(self.metadata.image.with_topic(self._topic_image(record)))
        if self._uncreated is not None:
            self._uncreated.append(record)
        else:
            self.replicas.create_partitions(record, self._config_values_of(record))

    def _config_values_of(self, record: TopicRecord) -> dict[str, object]:
        """Typed effective configs of a stored topic (overrides over broker defaults)."""
        values = dict(self._defaults)
        values.update(validate_topic_configs(record.configs))
        return values

    def _removed(self, record: TopicRecord) -> None:
        self.store.remove_topic(record.name, expected_version=self.store.topic_version(record.name))
        self.metadata.publish(self.metadata.image.without_topic(record.name))
        self.replicas.delete_partitions(record)

    def _place(self, num_partitions: int, replication_factor: int, first_partition: int = 0) -> tuple[tuple[int, ...], ...]:
        if replication_factor > 1:
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                f"replication factor: {replication_factor} larger than available brokers: 1",
            )
        return tuple((self.node_id,) for _ in range(num_partitions))

    def _check_assignment(self, partition: int, brokers) -> None:
        live = set(self.metadata.image.live_broker_ids()) or {self.node_id}
        if not brokers or len(set(brokers)) != len(brokers) or any(b not in live for b in brokers):
            raise KafkaError(
                ErrorCode.invalid_replica_assignment,
                f"partition {partition} is assigned to brokers {list(brokers)}; the live brokers are {sorted(live)}",
            )

    async def wait_for_leaders(self, name: str, timeout_s: float) -> None:
        """Until every partition of a new topic has a leader (at once on a single node)."""

    # -- reading ---------------------------------------------------------------------------

    def topic(self, name: str) -> TopicRecord | None:
        image = self.metadata.image.topic(name)
        return None if image is None else _record_of(image)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicRecord | None:
        image = self.metadata.image.topic_by_id(topic_id)
        return None if image is None else _record_of(image)

    def topic_names(self) -> list[str]:
        return list(self.metadata.image.topics)

    def topics(self) -> list[TopicRecord]:
        return [_record_of(topic) for topic in self.metadata.image.topics.values()]

    def effective_topic_configs(self, record: TopicRecord) -> dict[str, str]:
        """Every topic config with its value, as strings (overrides over broker defaults)."""
        return {name: _config_string(value) for name, value in self._config_values_of(record).items()}

    def topic_config_values(self, name: str) -> dict[str, object]:
        """Typed effective configs of a topic; broker defaults for an unknown one."""
        values = dict(self._defaults)
        topic = self.metadata.image.topic(name)
        if topic is not None:
            values.update(validate_topic_configs(topic.configs))
        return values

    validate_topic_name = staticmethod(validate_topic_name)

    # -- changing --------------------------------------------------------------------------

    async def run(self, change, *args, **kwargs):
        """Run a change that writes the metadata store (the methods below, a producer-id block).
        Here the store is a local file and the change runs on the event loop, one at a time. The
        partitions of the topics it writes get their files in a worker thread afterwards (10,000
        of them are many seconds of file creation, and every client must keep being served
        meanwhile; one asking for a partition not created yet gets a retriable error, as from a
        Kafka broker that has not yet heard of it). ClusterController runs the change in a worker
        thread, because ZooKeeper may be slow or away."""
        async with self._changing:
            self._uncreated = []
            try:
                return change(*args, **kwargs)
            finally:
                uncreated, self._uncreated = self._uncreated, None
                for record in uncreated:
                    await self.replicas.create_partitions_off_loop(record, self._config_values_of(record))

    def create_topic(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: Mapping[str, str | None],
        *,
        assignments: Mapping[int, tuple[int, ...]] | None = None,
        validate_only: bool = False,
    ) -> TopicRecord:
        validate_topic_name(name)
        if self.metadata.image.topic(name) is not None:
            raise KafkaError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
        if assignments:
            if num_partitions != -1 or replication_factor != -1:
                raise KafkaError(
                    ErrorCode.invalid_request,
                    "give either a replica assignment or partitions and replication factor, not both",
                )
            if sorted(assignments) != list(range(len(assignments))):
                raise KafkaError(ErrorCode.invalid_replica_assignment, "assigned partitions must be 0..n-1")
            for partition, brokers in assignments.items():
                self._check_assignment(partition, brokers)
            if len({len(brokers) for brokers in assignments.values()}) != 1:
                raise KafkaError(ErrorCode.invalid_replica_assignment, "every partition needs the same number of replicas")
            num_partitions = len(assignments)
            replication_factor = len(assignments[0])
        if num_partitions == -1:
            num_partitions = self.config["num.partitions"]
        if replication_factor == -1:
            replication_factor = self.config["default.replication.factor"]
        if not 1 <= num_partitions <= MAX_PARTITIONS:
            raise KafkaError(
                ErrorCode.invalid_partitions, f"number of partitions must be between 1 and {MAX_PARTITIONS}, got {num_partitions}"
            )
        if replication_factor < 1:
            raise KafkaError(ErrorCode.invalid_replication_factor, f"replication factor must be at least 1, got {replication_factor}")
        assignment = (
            tuple(tuple(assignments[p]) for p in range(num_partitions)) if assignments
            else self._place(num_partitions, replication_factor)
        )
        overrides = {key: value for key, value in configs.items() if value is not None}
        try:
            validate_topic_configs(overrides)
        except ConfigError as error:
            raise KafkaError(ErrorCode.invalid_config, str(error)) from None
        record = TopicRecord(name, uuid.uuid4(), num_partitions, replication_factor, overrides, assignment)
        if validate_only:
            return record
        try:
            self._stored(record, created=True)
        except BadVersionError:
            raise KafkaError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.") from None
        log.info("Created topic %s with %d partition(s), replication factor %d and id %s",
                 name, num_partitions, replication_factor, record.topic_id)
        return record

    def ensure_internal_topic(self, name: str, partitions: int, configs: Mapping[str, str],
                              replication_factor: int = 1) -> TopicRecord:
        """An internal topic (`__consumer_offsets`), created on first use.

        Replication factor 1 on a single node, whatever offsets.topic.replication.factor says:
        Kafka would refuse to create it (and every group would fail) until that is lowered.
        """
        record = self.topic(name)
        if record is None:
            try:
                record = self.create_topic(name, partitions, self._internal_replication(replication_factor), configs)
            except KafkaError as error:
                if error.code != ErrorCode.topic_already_exists:
                    raise
                record = self.topic(name) or self.store.topics()[name]
        return record

    def _internal_replication(self, configured: int) -> int:
        return 1

    def set_topic_configs(self, name: str, overrides: Mapping[str, str]) -> TopicRecord:
        """Replace a topic's config overrides (already validated) and apply them to its partitions now."""
        record = self.topic(name)
        if record is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
        record = dataclasses.replace(record, configs=dict(overrides))
        self._configs_stored(record)
        log.info("Topic %s configs are now %s", name, overrides or "the defaults")
        return record

    def _configs_stored(self, record: TopicRecord) -> None:
        self.store.put_topic(record, expected_version=self.store.topic_version(record.name))
        self.metadata.publish(self.metadata.image.with_topic(self._topic_image(record)))
        self.replicas.update_configs(record, self.topic_config_values(record.name))

    def reconfigure(self, config: BrokerConfig) -> None:
        """Dynamic broker configs changed: new topic defaults, applied to every partition now."""
        self.config = config
        self._defaults = topic_config_defaults(config)
        self.replicas.configure_throttles(config)
        for record in self.topics():
            self.replicas.update_configs(record, self.topic_config_values(record.name))

    def create_partitions(
        self, name: str, count: int, assignments: list[tuple[int, ...]] | None, *, validate_only: bool = False
    ) -> TopicRecord:
        """Grow a topic to `count` partitions (Kafka never shrinks one)."""
        record = self.topic(name)
        if record is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
        if count == record.partitions:
            raise KafkaError(ErrorCode.invalid_partitions, f"Topic already has {count} partition(s).")
        if count < record.partitions:
            raise KafkaError(
                ErrorCode.invalid_partitions,
                f"The topic {name} currently has {record.partitions} partition(s); {count} would not be an increase.",
            )
        if count > MAX_PARTITIONS:
            raise KafkaError(ErrorCode.invalid_partitions, f"at most {MAX_PARTITIONS} partitions, got {count}")
        if assignments is not None:
            if len(assignments) != count - record.partitions:
                raise KafkaError(
                    ErrorCode.invalid_replica_assignment,
                    f"{len(assignments)} assignments given for {count - record.partitions} new partitions",
                )
            for offset, brokers in enumerate(assignments):
                self._check_assignment(record.partitions + offset, brokers)
        if validate_only:
            return record
        new_assignment = (
            tuple(tuple(brokers) for brokers in assignments) if assignments
            else self._place(count - record.partitions, record.replication_factor, record.partitions)
        )
        record = dataclasses.replace(record, partitions=count, assignment=record.assignment + new_assignment)
        self._stored(record, created=False)
        log.info("Topic %s now has %d partitions", name, count)
        return record

    def auto_create_topic(self, name: str) -> TopicRecord:
        """Create `name` with the broker defaults, if auto-creation is on (else UNKNOWN_TOPIC_OR_PARTITION)."""
        if not self.config["auto.create.topics.enable"]:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
        existing = self.topic(name)
        if existing is not None:
            return existing
        try:
            return self.create_topic(name, -1, -1, {})
        except KafkaError as error:
            if error.code == ErrorCode.topic_already_exists and (existing := self.topic(name)) is not None:
                return existing
            raise

    def delete_topic(self, name: str) -> TopicRecord:
        if not self.config["delete.topic.enable"]:
            raise KafkaError(ErrorCode.topic_deletion_disabled, "topic deletion is disabled (delete.topic.enable=false)")
        record = self.topic(name)
        if record is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
        self._removed(record)
        log.info("Deleted topic %s", name)
        return record

    def load_partitions(self) -> None:
        """At start-up: a partition for every stored topic; logs of unknown topics set aside as stray."""
        self.replicas.reconcile({record.name: record for record in self.topics()}, self.topic_config_values)


def _record_of(topic: TopicImage) -> TopicRecord:
    assignment = tuple(p.replicas for p in topic.partitions)
    return TopicRecord(topic.name, topic.topic_id, topic.partition_count, topic.replication_factor,
                       dict(topic.configs), assignment)


def _config_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)
