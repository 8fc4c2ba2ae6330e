"""The metadata store interface: what the cluster knows, whoever keeps it.

Single-node mode keeps it in a local file (local_store.py); cluster mode will keep it in
ZooKeeper. Nothing above this interface knows which one it talks to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable, Protocol


class MetadataStoreError(Exception):
    """The metadata cannot be used (unreadable, or another cluster's); one line for the operator."""


class MetadataStoreUnavailableError(MetadataStoreError):
    """The store cannot be reached now (ZooKeeper away); a request that needs it times out."""


@dataclass(frozen=True)
class TopicRecord:
    """A topic as the store keeps it: its id, its replica assignment (partition -> brokers) and
    its config overrides. Leaders and ISRs are partition state, kept apart."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)  # overrides only, as given by the user
    assignment: tuple[tuple[int, ...], ...] = ()  # replicas of each partition; () on a single node

    def replicas_of(self, partition: int, default: tuple[int, ...]) -> tuple[int, ...]:
        return self.assignment[partition] if partition < len(self.assignment) else default


class BadVersionError(Exception):
    """A conditional write found another version than the one it was based on."""


class MetadataStore(Protocol):
    """Every write is versioned: put_topic returns the topic's new version and, given
    `expected_version`, writes only if the stored version is still that one (BadVersionError
    otherwise), so two writers never overwrite each other's change unknowingly. Listeners
    given to watch() hear of every change, made here or (ZooKeeper) by another broker."""

    cluster_id: str

    def topics(self) -> dict[str, TopicRecord]: ...

    def topic_version(self, name: str) -> int:
        """The stored version of a topic (-1 if absent)."""
        ...

    def put_topic(self, record: TopicRecord, *, expected_version: int | None = None) -> int: ...

    def remove_topic(self, name: str, *, expected_version: int | None = None) -> None: ...

    def watch(self, listener: Callable[[str, str], None]) -> None:
        """`listener(kind, key)` after each change: kind "topic", "broker_configs", "group_configs", "user_configs", "client_quotas", "acls",
        "delegation_tokens" or "producer_ids"."""
        ...

    def broker_configs(self) -> dict[str, dict[str, str]]:
        """Dynamic broker configs by entity: "" for the cluster default, "<id>" for one broker."""
        ...

    def set_broker_configs(self, entity: str, configs: dict[str, str]) -> None: ...

    def group_configs(self) -> dict[str, dict[str, str]]:
        """Configs set on consumer groups (KIP-848 group configs), by group id."""
        ...

    def set_group_configs(self, group_id: str, configs: dict[str, str]) -> None: ...

    def user_configs(self) -> dict[str, dict[str, str]]:
        """Configs of users by name: their SCRAM credentials ("SCRAM-SHA-256": "salt=...,...")."""
        ...

    def set_user_configs(self, user: str, configs: dict[str, str]) -> None: ...

    def client_quotas(self) -> dict[tuple[tuple[str, str | None], ...], dict[str, str]]:
        """Client quotas by entity (security/quotas.py's Entity: sorted (type, name) pairs, a None
        name for the default), values as stored text ("1048576")."""
        ...

    def set_client_quotas(self, entity: tuple[tuple[str, str | None], ...], values: dict[str, str]) -> None:
        """Replace an entity's quotas (none: remove them)."""
        ...

    def acls(self) -> dict[tuple[str, str, str], list[dict]]:
        """ACL entries by resource (type name, LITERAL or PREFIXED, name), in Kafka's JSON shape."""
        ...

    def set_acls(self, resource: tuple[str, str, str], entries: list[dict]) -> None:
        """Replace a resource's ACL entries (none: remove the resource)."""
        ...

    def update_acls(self, resource: tuple[str, str, str], change: Callable[[list[dict]], list[dict]]) -> None:
        """Replace a resource's entries with `change(stored entries)`, atomically: if another
        writer changed them meanwhile, `change` runs again on theirs (no update is lost)."""
        ...

    def delegation_tokens(self) -> dict[str, dict]:
        """Delegation tokens by id, in Kafka's JSON shape (security/delegation_token.py)."""
        ...

    def set_delegation_token(self, token_id: str, stored: dict | None) -> None:
        """Write a token (None: remove it; removing one that is gone is no error)."""
        ...

    def allocate_producer_id_block(self, size: int) -> int:
        """The first id of a fresh block of `size` producer ids, never handed out before."""
        ...
