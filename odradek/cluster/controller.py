"""The controller: topic creation and deletion, placement, topic configs.

In single-node mode this broker is the controller and the only replica of every partition.
It changes the metadata store first (conditional writes on the version it read), then
publishes the new metadata image, then tells the replica manager to create or drop the
partitions, so a crash between the two is repaired at start-up (partitions are created for
every stored topic; directories of topics not stored are set aside as stray, never deleted).
"""

from __future__ import annotations

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
from odradek.cluster.store import MetadataStore, TopicRecord
from odradek.config import BrokerConfig, ConfigError, topic_config_defaults, validate_topic_configs
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.topic_partition import validate_topic_name

log = logging.getLogger(__name__)

MAX_PARTITIONS = 100_000


class Controller:
    """Owns topic lifecycle; the replica manager owns the partitions that follow from it."""

    def __init__(self, store: MetadataStore, replicas, config: BrokerConfig, node_id: int,
                 metadata: MetadataCache | None = None) -> None:
        self.store = store
        self.replicas = replicas
        self.config = config
        self.node_id = node_id
        self.metadata = metadata if metadata is not None else MetadataCache()
        self._topics: dict[str, TopicRecord] = store.topics()
        self._by_id: dict[uuid.UUID, TopicRecord] = {r.topic_id: r for r in self._topics.values()}
        self._defaults = topic_config_defaults(config)
        self.metadata.publish(
            MetadataImage.build(
                store.cluster_id, node_id, self.metadata.image.brokers.values(),
                (self._topic_image(record) for record in self._topics.values()),
            )
        )

    # -- the image -------------------------------------------------------------------------

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

    def _stored(self, record: TopicRecord) -> None:
        """Write a topic (conditional on the version we know) and publish it."""
        self.store.put_topic(record, expected_version=self.store.topic_version(record.name))
        old = self._topics.get(record.name)
        if old is not None:
            self._by_id.pop(old.topic_id, None)
        self._topics[record.name] = record
        self._by_id[record.topic_id] = record
        self.metadata.publish(self.metadata.image.with_topic(self._topic_image(record)))

    # -- reading ---------------------------------------------------------------------------

    def topic(self, name: str) -> TopicRecord | None:
        return self._topics.get(name)

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicRecord | None:
        return self._by_id.get(topic_id)

    def topic_names(self) -> list[str]:
        return list(self._topics)

    def topics(self) -> list[TopicRecord]:
        return list(self._topics.values())

    def effective_topic_configs(self, record: TopicRecord) -> dict[str, str]:
        """Every topic config with its value, as strings (overrides over broker defaults)."""
        values = dict(self._defaults)
        values.update(validate_topic_configs(record.configs))
        return {name: _config_string(value) for name, value in values.items()}

    def topic_config_values(self, name: str) -> dict[str, object]:
        """Typed effective configs of a topic; broker defaults for an unknown one."""
        values = dict(self._defaults)
        record = self._topics.get(name)
        if record is not None:
            values.update(validate_topic_configs(record.configs))
        return values

    validate_topic_name = staticmethod(validate_topic_name)

    # -- changing --------------------------------------------------------------------------

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
        if name in self._topics:
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
                if list(brokers) != [self.node_id]:
                    raise KafkaError(
                        ErrorCode.invalid_replica_assignment,
                        f"partition {partition} is assigned to brokers {list(brokers)}; the only broker is {self.node_id}",
                    )
            num_partitions, replication_factor = len(assignments), 1
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
        if replication_factor > 1:
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                f"replication factor: {replication_factor} larger than available brokers: 1",
            )
        overrides = {key: value for key, value in configs.items() if value is not None}
        try:
            validate_topic_configs(overrides)
        except ConfigError as error:
            raise KafkaError(ErrorCode.invalid_config, str(error)) from None
        assignment = tuple((self.node_id,) for _ in range(num_partitions))
        record = TopicRecord(name, uuid.uuid4(), num_partitions, replication_factor, overrides, assignment)
        if validate_only:
            return record
        self._stored(record)
        self.replicas.create_partitions(record, self.topic_config_values(name))
        log.info("Created topic %s with %d partition(s) and id %s", name, num_partitions, record.topic_id)
        return record

    def ensure_internal_topic(self, name: str, partitions: int, configs: Mapping[str, str]) -> TopicRecord:
        """An internal topic (`__consumer_offsets`), created on first use.

        Replication factor 1 on a single node, whatever offsets.topic.replication.factor says:
        Kafka would refuse to create it (and every group would fail) until that is lowered.
        """
        record = self._topics.get(name)
        if record is None:
            record = self.create_topic(name, partitions, 1, configs)
        return record

    def set_topic_configs(self, name: str, overrides: Mapping[str, str]) -> TopicRecord:
        """Replace a topic's config overrides (already validated) and apply them to its partitions now."""
        record = self._topics.get(name)
        if record is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
        record = dataclasses.replace(record, configs=dict(overrides))
        self._stored(record)
        self.replicas.update_configs(record, self.topic_config_values(name))
        log.info("Topic %s configs are now %s", name, overrides or "the defaults")
        return record

    def reconfigure(self, config: BrokerConfig) -> None:
        """Dynamic broker configs changed: new topic defaults, applied to every partition now."""
        self.config = config
        self._defaults = topic_config_defaults(config)
        for record in self._topics.values():
            self.replicas.update_configs(record, self.topic_config_values(record.name))

    def create_partitions(
        self, name: str, count: int, assignments: list[tuple[int, ...]] | None, *, validate_only: bool = False
    ) -> TopicRecord:
        """Grow a topic to `count` partitions (Kafka never shrinks one)."""
        record = self._topics.get(name)
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
            for brokers in assignments:
                if list(brokers) != [self.node_id]:
                    raise KafkaError(
                        ErrorCode.invalid_replica_assignment,
                        f"replicas {list(brokers)} are not available; the only broker is {self.node_id}",
                    )
        if validate_only:
            return record
        new_assignment = tuple(tuple(brokers) for brokers in assignments) if assignments else tuple(
            (self.node_id,) for _ in range(count - record.partitions)
        )
        record = dataclasses.replace(
            record, partitions=count,
            assignment=tuple(record.replicas_of(i, (self.node_id,)) for i in range(record.partitions)) + new_assignment,
        )
        self._stored(record)
        self.replicas.create_partitions(record, self.topic_config_values(name))
        log.info("Topic %s now has %d partitions", name, count)
        return record

    def auto_create_topic(self, name: str) -> TopicRecord:
        """Create `name` with the broker defaults, if auto-creation is on (else UNKNOWN_TOPIC_OR_PARTITION)."""
        if not self.config["auto.create.topics.enable"]:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
        existing = self._topics.get(name)
        if existing is not None:
            return existing
        return self.create_topic(name, -1, -1, {})

    def delete_topic(self, name: str) -> TopicRecord:
        if not self.config["delete.topic.enable"]:
            raise KafkaError(ErrorCode.topic_deletion_disabled, "topic deletion is disabled (delete.topic.enable=false)")
        record = self._topics.get(name)
        if record is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{name}' does not exist")
        self.store.remove_topic(name, expected_version=self.store.topic_version(name))
        del self._topics[name]
        self._by_id.pop(record.topic_id, None)
        self.metadata.publish(self.metadata.image.without_topic(name))
        self.replicas.delete_partitions(record)
        log.info("Deleted topic %s", name)
        return record

    def load_partitions(self) -> None:
        """At start-up: a partition for every stored topic; logs of unknown topics set aside as stray."""
        self.replicas.reconcile({record.name: record for record in self._topics.values()}, self.topic_config_values)


def _config_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)
