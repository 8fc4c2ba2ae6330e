"""The metadata store interface: what the cluster knows, whoever keeps it.

Single-node mode keeps it in a local file (local_store.py); cluster mode will keep it in
ZooKeeper. Nothing above this interface knows which one it talks to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol


class MetadataStoreError(Exception):
    """The metadata cannot be used (unreadable, or another cluster's); one line for the operator."""


@dataclass(frozen=True)
class TopicRecord:
    name: str
    topic_id: uuid.UUID
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)  # overrides only, as given by the user


class MetadataStore(Protocol):
    cluster_id: str

    def topics(self) -> dict[str, TopicRecord]: ...

    def put_topic(self, record: TopicRecord) -> None: ...

    def remove_topic(self, name: str) -> None: ...

    def broker_configs(self) -> dict[str, dict[str, str]]:
        """Dynamic broker configs by entity: "" for the cluster default, "<id>" for one broker."""
        ...

    def set_broker_configs(self, entity: str, configs: dict[str, str]) -> None: ...

    def allocate_producer_id_block(self, size: int) -> int:
        """The first id of a fresh block of `size` producer ids, never handed out before."""
        ...
