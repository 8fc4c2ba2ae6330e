"""Admin operations over a KafkaClient: topics, partitions, configs, records, log dirs, groups.

Each operation sends the request to the node Kafka expects (any broker, the controller, a
partition's leader, a group's coordinator) and turns the answer into plain values. Errors per
item come back as `KafkaError | None` in a dict keyed by the item, so a caller can treat
"already exists" differently from a real failure; `raise_errors` raises the first one.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from odradek.client.client import KafkaClient
from odradek.client.consumer_protocol import PROTOCOL_TYPE, ConsumerProtocolError, decode_assignment
from odradek.client.errors import ErrorCode, KafkaError
from odradek.client.messages import to_ms
from odradek.client.metadata import ClusterMetadata
from odradek.protocol.topic_partition import TopicPartition
from odradek.security.acl import AclBinding, AclFilter, Operation, PatternType, Permission
from odradek.security.acl import ResourceType as AclResourceType
from odradek.security.delegation_token import split_principal
from odradek.security.scram import MECHANISM_TYPES as SCRAM_MECHANISM_TYPES
from odradek.security.scram import salted_password

__all__ = [
    "Admin",
    "ConfigEntry",
    "GroupDescription",
    "GroupListing",
    "LogDirDescription",
    "MemberDescription",
    "NewTopic",
    "raise_errors",
]

OFFSET_COMMIT = 8
OFFSET_FETCH = 9
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
CREATE_TOPICS = 19
DELETE_TOPICS = 20
DELETE_RECORDS = 21
DESCRIBE_CONFIGS = 32
DESCRIBE_LOG_DIRS = 35
CREATE_PARTITIONS = 37
DELETE_GROUPS = 42
INCREMENTAL_ALTER_CONFIGS = 44
OFFSET_DELETE = 47
DESCRIBE_ACLS = 29
CREATE_ACLS = 30
DELETE_ACLS = 31
DESCRIBE_USER_SCRAM_CREDENTIALS = 50
ALTER_USER_SCRAM_CREDENTIALS = 51
CREATE_DELEGATION_TOKEN = 38
RENEW_DELEGATION_TOKEN = 39
EXPIRE_DELEGATION_TOKEN = 40
DESCRIBE_DELEGATION_TOKEN = 41

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_GROUP = 32
RESOURCE_TYPES = {
    "topics": RESOURCE_TOPIC, "topic": RESOURCE_TOPIC, "brokers": RESOURCE_BROKER, "broker": RESOURCE_BROKER,
    "groups": RESOURCE_GROUP, "group": RESOURCE_GROUP,
}

CONFIG_SOURCES = {
    -1: "UNKNOWN",
    0: "UNKNOWN",
    1: "DYNAMIC_TOPIC_CONFIG",
    2: "DYNAMIC_BROKER_CONFIG",
    3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
    4: "STATIC_BROKER_CONFIG",
    5: "DEFAULT_CONFIG",
    6: "DYNAMIC_BROKER_LOGGER_CONFIG",
    7: "CLIENT_METRICS_CONFIG",
    8: "GROUP_CONFIG",
}
CONFIG_TYPES = {0: "UNKNOWN", 1: "BOOLEAN", 2: "STRING", 3: "INT", 4: "SHORT", 5: "LONG", 6: "DOUBLE", 7: "LIST", 8: "CLASS", 9: "PASSWORD"}

OP_SET = 0
OP_DELETE = 1
OP_APPEND = 2
OP_SUBTRACT = 3


def _error(code, message: str | None, subject: str) -> KafkaError | None:
    code = ErrorCode(int(code))
    if code == ErrorCode.none:
        return None
    quoted = subject.split("'")[1] if subject.count("'") >= 2 else subject
    if message and quoted in message:
        return KafkaError(code, message)
    return KafkaError(code, f"{subject}: {message or code.name.upper()}")


_ACL_REFUSALS = {int(ErrorCode.cluster_authorization_failed): "not authorized: managing ACLs needs Alter (listing: "
                  "Describe) on the cluster, or a super user"}


def _filter_values(acl_filter: AclFilter) -> dict:
    return {"resource_type_filter": acl_filter.resource_type, "resource_name_filter": acl_filter.resource_name,
            "pattern_type_filter": acl_filter.pattern_type, "principal_filter": acl_filter.principal,
            "host_filter": acl_filter.host, "operation": acl_filter.operation, "permission_type": acl_filter.permission}


def raise_errors(results: Mapping[Any, KafkaError | None]) -> None:
    for error in results.values():
        if error is not None:
            raise error


@dataclass(frozen=True)
class NewTopic:
    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigEntry:
    name: str
    value: str | None
    source: str
    read_only: bool = False
    is_sensitive: bool = False
    synonyms: tuple[tuple[str, str | None, str], ...] = ()
    config_type: str = "UNKNOWN"
    documentation: str | None = None

    @property
    def is_default(self) -> bool:
        return self.source in ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG", "UNKNOWN")


@dataclass(frozen=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str | None = None
    group_type: str | None = None


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    assignment: tuple[TopicPartition, ...]


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]
    error: KafkaError | None = None


@dataclass(frozen=True)
class LogDirDescription:
    node_id: int
    log_dir: str
    partition_sizes: dict[TopicPartition, int]
    total_bytes: int = -1
    usable_bytes: int = -1
    error: KafkaError | None = None


@dataclass(frozen=True)
class DelegationToken:
    """A delegation token (KIP-48): a job logs in with SCRAM, `token_id` as user name,
    `password` as password and tokenauth="true", and acts as `owner`."""

    token_id: str
    hmac: bytes
    owner: str
    requester: str
    renewers: tuple[str, ...]
    issue_ms: int
    expiry_ms: int
    max_ms: int

    @property
    def password(self) -> str:
        return base64.b64encode(self.hmac).decode()


def _principal(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def _split_principal(principal: str) -> dict[str, str]:
    kind, name = split_principal(principal)
    return {"principal_type": kind, "principal_name": name}


class Admin:
    """Admin operations on the cluster `client` is connected to."""

    def __init__(self, client: KafkaClient) -> None:
        self.client = client

    @property
    def timeout_ms(self) -> int:
        return self.client.request_timeout_ms

    async def _controller(self) -> int | None:
        cluster = await self.client.refresh_metadata(topics=[])
        return cluster.controller_id if cluster.controller_id in cluster.brokers else None

    # --- topics -------------------------------------------------------------------------------

    async def list_topics(self, include_internal: bool = True) -> ClusterMetadata:
        cluster = await self.client.refresh_metadata(topics=None)
        if include_internal:
            return cluster
        topics = {name: t for name, t in cluster.topics.items() if not t.is_internal}
        return ClusterMetadata(cluster.brokers, topics, cluster.cluster_id, cluster.controller_id)

    async def describe_topics(self, names: Iterable[str]) -> ClusterMetadata:
        """Metadata for `names`; UNKNOWN_TOPIC_OR_PARTITION naming the first that does not exist."""
        return await self.client.topic_metadata(names)

    async def create_topics(self, topics: Iterable[NewTopic], *, validate_only: bool = False) -> dict[str, KafkaError | None]:
        topics = list(topics)
        values = {
            "topics": [
                {
                    "name": t.name,
                    "num_partitions": t.num_partitions,
                    "replication_factor": t.replication_factor,
                    "assignments": [],
                    "configs": [{"name": k, "value": v} for k, v in t.configs.items()],
                }
                for t in topics
            ],
            "timeout": self.timeout_ms,
            "timeout_ms": self.timeout_ms,
            "validate_only": validate_only,
        }
        response = await self.client.request(CREATE_TOPICS, values, node_id=await self._controller())
        return {t.name: _error(t.error_code, getattr(t, "error_message", None), f"topic '{t.name}'") for t in response.topics}

    async def delete_topics(self, names: Iterable[str]) -> dict[str, KafkaError | None]:
        names = list(names)
        values = {
            "topic_names": names,
            "topics": [{"name": n, "topic_id": uuid.UUID(int=0)} for n in names],
            "timeout": self.timeout_ms,
            "timeout_ms": self.timeout_ms,
        }
        response = await self.client.request(DELETE_TOPICS, values, node_id=await self._controller())
        return {
            r.name: _error(r.error_code, getattr(r, "error_message", None), f"topic '{r.name}'") for r in response.responses
        }

    async def create_partitions(self, counts: Mapping[str, int], *, validate_only: bool = False) -> dict[str, KafkaError | None]:
        """Raise each topic's partition count to the given total."""
        values = {
            "topics": [{"name": name, "count": count, "assignments": None} for name, count in counts.items()],
            "timeout": self.timeout_ms,
            "validate_only": validate_only,
        }
        response = await self.client.request(CREATE_PARTITIONS, values, node_id=await self._controller())
        return {r.name: _error(r.error_code, r.error_message, f"topic '{r.name}'") for r in response.results}

    # --- configs ------------------------------------------------------------------------------

    async def describe_configs(
        self, resource_type: int, name: str, keys: Iterable[str] | None = None, *, include_synonyms: bool = True, include_documentation: bool = False
    ) -> list[ConfigEntry]:
        """The configs of one topic or broker (a broker's name is its node id; "" for the default)."""
        node_id = int(name) if resource_type == RESOURCE_BROKER and name.isdigit() else None
        values = {
            "resources": [{"resource_type": resource_type, "resource_name": name, "configuration_keys": None if keys is None else list(keys)}],
            "include_synonyms": include_synonyms,
            "include_documentation": include_documentation,
        }
        response = await self.client.request(DESCRIBE_CONFIGS, values, node_id=node_id)
        result = response.results[0]
        error = _error(result.error_code, result.error_message, _resource_label(resource_type, name))
        if error is not None:
            raise error
        entries = []
        for c in result.configs:
            source = getattr(c, "config_source", None)
            if source is None:  # v0 has is_default instead
                source = 5 if getattr(c, "is_default", False) else 1
            entries.append(
                ConfigEntry(
                    name=c.name,
                    value=c.value,
                    source=CONFIG_SOURCES.get(int(source), str(source)),
                    read_only=bool(c.read_only),
                    is_sensitive=bool(c.is_sensitive),
                    synonyms=tuple((s.name, s.value, CONFIG_SOURCES.get(int(s.source), str(s.source))) for s in getattr(c, "synonyms", ())),
                    config_type=CONFIG_TYPES.get(int(getattr(c, "config_type", 0)), "UNKNOWN"),
                    documentation=getattr(c, "documentation", None),
                )
            )
        return entries

    async def incremental_alter_configs(
        self,
        resource_type: int,
        name: str,
        *,
        set_configs: Mapping[str, str] | None = None,
        delete_configs: Iterable[str] = (),
        validate_only: bool = False,
    ) -> None:
        configs = [{"name": k, "config_operation": OP_SET, "value": v} for k, v in (set_configs or {}).items()]
        configs += [{"name": k, "config_operation": OP_DELETE, "value": None} for k in delete_configs]
        values = {
            "resources": [{"resource_type": resource_type, "resource_name": name, "configs": configs}],
            "validate_only": validate_only,
        }
        node_id = int(name) if resource_type == RESOURCE_BROKER and name.isdigit() else None
        response = await self.client.request(INCREMENTAL_ALTER_CONFIGS, values, node_id=node_id)
        for r in response.responses:
            error = _error(r.error_code, r.error_message, _resource_label(resource_type, name))
            if error is not None:
                raise error

    # --- ACLs and SCRAM users -------------------------------------------------------------------

    async def create_acls(self, bindings: Iterable[AclBinding]) -> list[KafkaError | None]:
        """One result per binding, in order."""
        bindings = list(bindings)
        creations = [{"resource_type": b.resource_type, "resource_name": b.resource_name,
                      "resource_pattern_type": b.pattern_type, "principal": b.principal, "host": b.host,
                      "operation": b.operation, "permission_type": b.permission} for b in bindings]
        response = await self.client.request(CREATE_ACLS, {"creations": creations}, min_version=1)
        return [_error(r.error_code, r.error_message or _ACL_REFUSALS.get(int(r.error_code)), "CreateAcls")
                for b, r in zip(bindings, response.results)]

    async def describe_acls(self, acl_filter: AclFilter) -> list[AclBinding]:
        response = await self.client.request(DESCRIBE_ACLS, _filter_values(acl_filter), min_version=1)
        error = _error(response.error_code, response.error_message or _ACL_REFUSALS.get(int(response.error_code)),
                       "DescribeAcls")
        if error is not None:
            raise error
        return [AclBinding(AclResourceType(int(r.resource_type)), r.resource_name, PatternType(int(r.pattern_type)),
                           a.principal, a.host, Operation(int(a.operation)), Permission(int(a.permission_type)))
                for r in response.resources for a in r.acls]

    async def delete_acls(self, filters: Iterable[AclFilter]) -> list[list[AclBinding] | KafkaError]:
        """Per filter, the bindings it removed, or its error."""
        response = await self.client.request(DELETE_ACLS, {"filters": [_filter_values(f) for f in filters]}, min_version=1)
        results: list[list[AclBinding] | KafkaError] = []
        for result in response.filter_results:
            error = _error(result.error_code, result.error_message or _ACL_REFUSALS.get(int(result.error_code)), "DeleteAcls")
            results.append(error if error is not None else [
                AclBinding(AclResourceType(int(m.resource_type)), m.resource_name, PatternType(int(m.pattern_type)),
                           m.principal, m.host, Operation(int(m.operation)), Permission(int(m.permission_type)))
                for m in result.matching_acls])
        return results

    async def describe_scram_users(self, users: Iterable[str] | None = None) -> dict[str, list[tuple[str, int]] | KafkaError]:
        """user -> [(mechanism, iterations)] (or its error); every user with credentials when None."""
        values = {"users": None if users is None else [{"name": u} for u in users]}
        response = await self.client.request(DESCRIBE_USER_SCRAM_CREDENTIALS, values)
        error = _error(response.error_code, response.error_message, "DescribeUserScramCredentials")
        if error is not None:
            raise error
        mechanisms = {number: name for name, number in SCRAM_MECHANISM_TYPES.items()}
        return {
            r.user: _error(r.error_code, r.error_message, f"user '{r.user}'") or [
                (mechanisms.get(int(c.mechanism), str(c.mechanism)), int(c.iterations)) for c in r.credential_infos]
            for r in response.results
        }

    async def alter_scram_users(self, upsertions: Iterable[tuple[str, str, str, int]] = (),
                                deletions: Iterable[tuple[str, str]] = ()) -> dict[str, KafkaError | None]:
        """Set (user, mechanism, password, iterations) and remove (user, mechanism) credentials. The
        password never leaves this process: a fresh salt and the salted password are sent."""
        upserts = []
        for user, mechanism, password, iterations in upsertions:
            salt = os.urandom(32)
            upserts.append({"name": user, "mechanism": SCRAM_MECHANISM_TYPES[mechanism], "iterations": iterations,
                            "salt": salt, "salted_password": salted_password(mechanism, password, salt, iterations)})
        deletes = [{"name": user, "mechanism": SCRAM_MECHANISM_TYPES[mechanism]} for user, mechanism in deletions]
        response = await self.client.request(ALTER_USER_SCRAM_CREDENTIALS, {"deletions": deletes, "upsertions": upserts})
        return {r.user: _error(r.error_code, r.error_message, f"user '{r.user}'") for r in response.results}

    # --- records and log dirs -------------------------------------------------------------------

    async def create_delegation_token(self, renewers: Iterable[str] = (), max_lifetime_ms: int = -1,
                                      owner: str | None = None) -> DelegationToken:
        """A token for this client's principal (or `owner`, "User:alice", with CreateTokens on
        that user); `renewers` are principals; -1: the broker's max lifetime."""
        values = {"renewers": [_split_principal(r) for r in renewers], "max_lifetime": max_lifetime_ms,
                  "owner_principal_type": None, "owner_principal_name": None}
        if owner is not None:
            values.update(("owner_" + key, value) for key, value in _split_principal(owner).items())
        response = await self.client.request(CREATE_DELEGATION_TOKEN, values, min_version=3 if owner else 1)
        error = _error(response.error_code, None, "CreateDelegationToken")
        if error is not None:
            raise error
        requester = (_principal(response.token_requester_principal_type, response.token_requester_principal_name)
                     if hasattr(response, "token_requester_principal_name") else "")
        return DelegationToken(response.token_id, bytes(response.hmac),
                               _principal(response.principal_type, response.principal_name), requester,
                               tuple(str(r) for r in renewers), to_ms(response.issue_timestamp),
                               to_ms(response.expiry_timestamp), to_ms(response.max_timestamp))

    async def describe_delegation_tokens(self, owners: Iterable[str] | None = None) -> list[DelegationToken]:
        """The tokens of `owners` (principals; None: all) that this client may see."""
        values = {"owners": None if owners is None else [_split_principal(o) for o in owners]}
        response = await self.client.request(DESCRIBE_DELEGATION_TOKEN, values, min_version=1)
        error = _error(response.error_code, None, "DescribeDelegationToken")
        if error is not None:
            raise error
        return [DelegationToken(t.token_id, bytes(t.hmac), _principal(t.principal_type, t.principal_name),
                                _principal(t.token_requester_principal_type, t.token_requester_principal_name)
                                if hasattr(t, "token_requester_principal_name") else "",
                                tuple(_principal(r.principal_type, r.principal_name) for r in t.renewers),
                                int(t.issue_timestamp), int(t.expiry_timestamp), int(t.max_timestamp))
                for t in response.tokens]

    async def renew_delegation_token(self, hmac: bytes, period_ms: int = -1) -> int:
        """The token's new expiry time (ms); -1: the broker's default period."""
        return await self._token_expiry(RENEW_DELEGATION_TOKEN, "renew_period", hmac, period_ms)

    async def expire_delegation_token(self, hmac: bytes, period_ms: int = -1) -> int:
        """End the token after `period_ms` (negative: now, and it is removed); its expiry time (ms)."""
        return await self._token_expiry(EXPIRE_DELEGATION_TOKEN, "expiry_time_period", hmac, period_ms)

    async def _token_expiry(self, api_key: int, period_field: str, hmac: bytes, period_ms: int) -> int:
        response = await self.client.request(api_key, {"hmac": hmac, period_field: period_ms}, min_version=1)
        name = "RenewDelegationToken" if api_key == RENEW_DELEGATION_TOKEN else "ExpireDelegationToken"
        error = _error(response.error_code, None, name)
        if error is not None:
            raise error
        return to_ms(response.expiry_timestamp)

    async def delete_records(self, before: Mapping[TopicPartition, int]) -> dict[TopicPartition, int | KafkaError]:
        """Advance each partition's log start offset to the given offset (-1: its high watermark).

        Per partition: the new low watermark, or the error.
        """
        results: dict[TopicPartition, int | KafkaError] = {}
        by_leader = await self.client.leaders(before)

        async def one(node_id: int, partitions: list[TopicPartition]) -> None:
            topics: dict[str, list[dict]] = {}
            for tp in partitions:
                topics.setdefault(tp.topic, []).append({"partition_index": tp.partition, "offset": before[tp]})
            values = {"topics": [{"name": t, "partitions": ps} for t, ps in topics.items()], "timeout": self.timeout_ms}
            response = await self.client.request(DELETE_RECORDS, values, node_id=node_id)
            for t in response.topics:
                for p in t.partitions:
                    tp = TopicPartition(t.name, int(p.partition_index))
                    error = _error(p.error_code, None, f"partition {tp}")
                    results[tp] = error if error is not None else int(p.low_watermark)

        await asyncio.gather(*(one(node, parts) for node, parts in by_leader.items()))
        return results

    async def describe_log_dirs(self, node_ids: Iterable[int] | None = None, topics: Iterable[str] | None = None) -> list[LogDirDescription]:
        if node_ids is None:
            cluster = await self.client.refresh_metadata(topics=[])
            node_ids = sorted(cluster.brokers)
        values = {"topics": None if topics is None else [{"topic": t, "partitions": []} for t in topics]}
        if topics is not None:
            cluster = await self.client.topic_metadata(list(topics))
            values["topics"] = [{"topic": t, "partitions": [p.partition for p in cluster.topics[t].partitions]} for t in topics]
        descriptions: list[LogDirDescription] = []
        for node_id in node_ids:
            response = await self.client.request(DESCRIBE_LOG_DIRS, values, node_id=node_id)
            top_error = _error(getattr(response, "error_code", 0), None, f"broker {node_id}")
            if top_error is not None:
                raise top_error
            for r in response.results:
                sizes = {
                    TopicPartition(t.name, int(p.partition_index)): int(p.partition_size) for t in r.topics for p in t.partitions
                }
                descriptions.append(
                    LogDirDescription(
                        node_id=node_id,
                        log_dir=r.log_dir,
                        partition_sizes=sizes,
                        total_bytes=int(getattr(r, "total_bytes", -1)),
                        usable_bytes=int(getattr(r, "usable_bytes", -1)),
                        error=_error(r.error_code, None, f"log dir {r.log_dir} on broker {node_id}"),
                    )
                )
        return descriptions

    # --- groups -------------------------------------------------------------------------------

    async def list_groups(self) -> list[GroupListing]:
        cluster = await self.client.refresh_metadata(topics=[])
        groups: dict[str, GroupListing] = {}
        for node_id in sorted(cluster.brokers):
            response = await self.client.request(LIST_GROUPS, {"states_filter": [], "types_filter": []}, node_id=node_id)
            error = _error(response.error_code, None, f"listing groups on broker {node_id}")
            if error is not None:
                raise error
            for g in response.groups:
                groups[g.group_id] = GroupListing(
                    g.group_id, g.protocol_type, getattr(g, "group_state", None), getattr(g, "group_type", None)
                )
        return sorted(groups.values(), key=lambda g: g.group_id)

    async def describe_group(self, group_id: str) -> GroupDescription:
        """One classic group; a group that does not exist is in state Dead with no members."""
        node_id = await self.client.coordinator(group_id)
        response = await self.client.request(
            DESCRIBE_GROUPS, {"groups": [group_id], "include_authorized_operations": False}, node_id=node_id
        )
        g = response.groups[0]
        error = _error(g.error_code, getattr(g, "error_message", None), f"group '{group_id}'")
        members = []
        for m in g.members:
            try:
                assignment = decode_assignment(m.member_assignment) if g.protocol_type == PROTOCOL_TYPE else []
            except ConsumerProtocolError:
                assignment = []
            members.append(
                MemberDescription(m.member_id, getattr(m, "group_instance_id", None), m.client_id, m.client_host, tuple(assignment))
            )
        return GroupDescription(g.group_id, g.group_state, g.protocol_type, g.protocol_data, tuple(members), error)

    async def delete_groups(self, group_ids: Iterable[str]) -> dict[str, KafkaError | None]:
        results: dict[str, KafkaError | None] = {}
        for group_id in group_ids:
            node_id = await self.client.coordinator(group_id)
            response = await self.client.request(DELETE_GROUPS, {"groups_names": [group_id]}, node_id=node_id)
            for r in response.results:
                results[r.group_id] = _error(r.error_code, None, f"group '{r.group_id}'")
        return results

    async def delete_offsets(self, group_id: str, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, KafkaError | None]:
        """Remove the group's committed offsets of `partitions` (OffsetDelete)."""
        partitions = list(partitions)
        node_id = await self.client.coordinator(group_id)
        topics: dict[str, list[dict]] = {}
        for tp in partitions:
            topics.setdefault(tp.topic, []).append({"partition_index": tp.partition})
        values = {"group_id": group_id, "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}
        response = await self.client.request(OFFSET_DELETE, values, node_id=node_id)
        error = _error(response.error_code, None, f"group '{group_id}'")
        if error is not None:
            raise error
        return {
            TopicPartition(t.name, int(p.partition_index)): _error(p.error_code, None, f"partition {t.name}-{p.partition_index}")
            for t in response.topics
            for p in t.partitions
        }

    async def committed_offsets(self, group_id: str, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """The group's committed offsets (all of them when `partitions` is None); -1 = none."""
        node_id = await self.client.coordinator(group_id)
        return await fetch_committed_offsets(self.client, node_id, group_id, partitions)

    async def alter_group_offsets(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, KafkaError | None]:
        """Commit `offsets` for a group that has no active members (what --reset-offsets does)."""
        node_id = await self.client.coordinator(group_id)
        return await commit_offsets(self.client, node_id, group_id, offsets)


def _resource_label(resource_type: int, name: str) -> str:
    if resource_type == RESOURCE_BROKER:
        return f"broker '{name}'" if name else "default broker config"
    return f"topic '{name}'"


async def fetch_committed_offsets(
    client: KafkaClient, node_id: int, group_id: str, partitions: Iterable[TopicPartition] | None
) -> dict[TopicPartition, int]:
    topics = None
    if partitions is not None:
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        topics = [{"name": t, "partition_indexes": ps} for t, ps in by_topic.items()]
    values = {"group_id": group_id, "topics": topics, "groups": [{"group_id": group_id, "topics": topics}], "require_stable": False}
    response = await client.request(OFFSET_FETCH, values, node_id=node_id)
    if int(response.__version__) >= 8:
        group = response.groups[0]
        error = _error(group.error_code, None, f"group '{group_id}'")
        topic_entries = group.topics
    else:
        error = _error(getattr(response, "error_code", 0), None, f"group '{group_id}'")
        topic_entries = response.topics
    if error is not None:
        raise error
    offsets = {}
    for t in topic_entries:
        for p in t.partitions:
            p_error = _error(p.error_code, None, f"group '{group_id}' partition {t.name}-{p.partition_index}")
            if p_error is not None:
                raise p_error
            offsets[TopicPartition(t.name, int(p.partition_index))] = int(p.committed_offset)
    return offsets


async def commit_offsets(
    client: KafkaClient,
    node_id: int,
    group_id: str,
    offsets: Mapping[TopicPartition, int],
    *,
    generation_id: int = -1,
    member_id: str = "",
    group_instance_id: str | None = None,
) -> dict[TopicPartition, KafkaError | None]:
    by_topic: dict[str, list[dict]] = {}
    for tp, offset in offsets.items():
        by_topic.setdefault(tp.topic, []).append(
            {"partition_index": tp.partition, "committed_offset": offset, "committed_metadata": ""}
        )
    values = {
        "group_id": group_id,
        "generation_id_or_member_epoch": generation_id,
        "generation_id": generation_id,
        "member_id": member_id,
        "group_instance_id": group_instance_id,
        "retention_time_ms": -1,
        "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()],
    }
    response = await client.request(OFFSET_COMMIT, values, node_id=node_id)
    return {
        TopicPartition(t.name, int(p.partition_index)): _error(p.error_code, None, f"group '{group_id}' partition {t.name}-{p.partition_index}")
        for t in response.topics
        for p in t.partitions
    }
