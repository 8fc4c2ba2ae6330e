"""Kafka's access control lists: bindings, filters, and the authorizer's decision.

A binding grants or denies one principal, from one host, one operation on resources named
literally or by prefix. The numbers are Kafka's protocol values; the names are what Kafka writes
in ZooKeeper (`/kafka-acl/<Type>/<name>`, prefixed ones under `/kafka-acl-extended/prefixed/`).

The decision (Kafka's AclAuthorizer): super users may do anything; when no binding covers the
resource, `allow.everyone.if.no.acl.found` decides; a matching DENY wins over any ALLOW; READ,
WRITE, DELETE and ALTER imply DESCRIBE, and ALTER_CONFIGS implies DESCRIBE_CONFIGS. The principal
`User:*` and the host `*` match everyone. Pure data and rules: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14
    TWO_PHASE_COMMIT = 15


class Permission(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# The names Kafka writes in ZooKeeper and prints in kafka-acls.
RESOURCE_NAMES = {ResourceType.TOPIC: "Topic", ResourceType.GROUP: "Group", ResourceType.CLUSTER: "Cluster",
                  ResourceType.TRANSACTIONAL_ID: "TransactionalId", ResourceType.DELEGATION_TOKEN: "DelegationToken",
                  ResourceType.USER: "User"}
OPERATION_NAMES = {Operation.ALL: "All", Operation.READ: "Read", Operation.WRITE: "Write", Operation.CREATE: "Create",
                   Operation.DELETE: "Delete", Operation.ALTER: "Alter", Operation.DESCRIBE: "Describe",
                   Operation.CLUSTER_ACTION: "ClusterAction", Operation.DESCRIBE_CONFIGS: "DescribeConfigs",
                   Operation.ALTER_CONFIGS: "AlterConfigs", Operation.IDEMPOTENT_WRITE: "IdempotentWrite",
                   Operation.CREATE_TOKENS: "CreateTokens", Operation.DESCRIBE_TOKENS: "DescribeTokens",
                   Operation.TWO_PHASE_COMMIT: "TwoPhaseCommit"}
PERMISSION_NAMES = {Permission.ALLOW: "Allow", Permission.DENY: "Deny"}

# What else grants an operation (Kafka's implied operations).
_IMPLIED_BY = {
    Operation.DESCRIBE: {Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER},
    Operation.DESCRIBE_CONFIGS: {Operation.ALTER_CONFIGS},
}


# The operations Kafka reports in `authorized_operations` for each resource type.
SUPPORTED_OPERATIONS = {
    ResourceType.TOPIC: (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE, Operation.ALTER,
                         Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS),
    ResourceType.GROUP: (Operation.READ, Operation.DESCRIBE, Operation.DELETE),
    ResourceType.CLUSTER: (Operation.CREATE, Operation.CLUSTER_ACTION, Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS,
                           Operation.IDEMPOTENT_WRITE, Operation.ALTER, Operation.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (Operation.DESCRIBE, Operation.WRITE),
}


class AclError(ValueError):
    """A binding Kafka would refuse (answered INVALID_REQUEST with this message)."""


@dataclass(frozen=True)
class AclBinding:
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def covers(self, resource_type: ResourceType, name: str) -> bool:
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.LITERAL:
            return self.resource_name == name or self.resource_name == WILDCARD
        return self.pattern_type == PatternType.PREFIXED and name.startswith(self.resource_name)

    def applies_to(self, principal: str, host: str) -> bool:
        principal_ok = self.principal == principal or (self.principal == WILDCARD_PRINCIPAL and principal.startswith("User:"))
        return principal_ok and self.host in (host, WILDCARD)


def validate(binding: AclBinding) -> None:
    """Kafka's checks on a binding to create; AclError names what is wrong."""
    if binding.resource_type in (ResourceType.ANY, ResourceType.UNKNOWN) or binding.resource_type not in RESOURCE_NAMES:
        raise AclError(f"Invalid resource type: {binding.resource_type}")
    if binding.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise AclError(f"Invalid resource pattern type {binding.pattern_type.name}: must be LITERAL or PREFIXED")
    if binding.operation in (Operation.ANY, Operation.UNKNOWN):
        raise AclError(f"Invalid operation: {binding.operation.name}")
    if binding.permission not in (Permission.ALLOW, Permission.DENY):
        raise AclError(f"Invalid permission type: {binding.permission.name}")
    if not binding.resource_name:
        raise AclError("Resource name must not be empty")
    if binding.resource_type == ResourceType.CLUSTER and binding.resource_name != CLUSTER_NAME:
        raise AclError(f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}")
    kind, separator, name = binding.principal.partition(":")
    if not separator or not kind or not name:
        raise AclError(f"Could not parse principal from `{binding.principal}` (no colon is present separating the "
                       "principal type from the principal name)")
    if not binding.host:
        raise AclError("Host must not be empty (use * for every host)")


@dataclass(frozen=True)
class AclFilter:
    """A DescribeAcls or DeleteAcls filter: None and ANY match everything."""

    resource_type: ResourceType
    resource_name: str | None
    pattern_type: PatternType
    principal: str | None
    host: str | None
    operation: Operation
    permission: Permission

    def matches(self, binding: AclBinding) -> bool:
        if self.resource_type != ResourceType.ANY and binding.resource_type != self.resource_type:
            return False
        if self.pattern_type == PatternType.MATCH:
            if self.resource_name is not None and not binding.covers(binding.resource_type, self.resource_name):
                return False
        else:
            if self.pattern_type != PatternType.ANY and binding.pattern_type != self.pattern_type:
                return False
            if self.resource_name is not None and binding.resource_name != self.resource_name:
                return False
        if self.principal is not None and binding.principal != self.principal:
            return False
        if self.host is not None and binding.host != self.host:
            return False
        if self.operation != Operation.ANY and binding.operation != self.operation:
            return False
        return self.permission == Permission.ANY or binding.permission == self.permission


class Authorizer:
    """The decision over an immutable set of bindings; replaced whole when they change."""

    def __init__(self, bindings: Iterable[AclBinding], super_users: Iterable[str] = (),
                 allow_everyone_if_no_acl_found: bool = False) -> None:
        self.bindings = tuple(bindings)
        self.super_users = frozenset(super_users)
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self._by_type: dict[ResourceType, tuple[AclBinding, ...]] = {}
        for resource_type in RESOURCE_NAMES:
            self._by_type[resource_type] = tuple(b for b in self.bindings if b.resource_type == resource_type)

    def authorize(self, principal: str, host: str, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        if principal in self.super_users:
            return True
        relevant = [b for b in self._by_type.get(resource_type, ()) if b.covers(resource_type, name)]
        if not relevant:
            return self.allow_everyone_if_no_acl_found
        granting = {operation, Operation.ALL} | _IMPLIED_BY.get(operation, set())
        allowed = False
        for binding in relevant:
            if not binding.applies_to(principal, host):
                continue
            if binding.permission == Permission.DENY and binding.operation in (operation, Operation.ALL):
                return False
            if binding.permission == Permission.ALLOW and binding.operation in granting:
                allowed = True
        return allowed

    def authorize_any(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
                      names: Iterable[str]) -> bool:
        """Whether the principal may do `operation` on some resource of the type: a binding that
        grants it, or one of the existing `names` it is allowed on (KIP-679: an idempotent
        producer needs Write on some topic, not IdempotentWrite on the cluster)."""
        if principal in self.super_users:
            return True
        granting = (operation, Operation.ALL)
        if any(b.permission == Permission.ALLOW and b.operation in granting and b.applies_to(principal, host)
               for b in self._by_type.get(resource_type, ())):
            return True
        return any(self.authorize(principal, host, operation, resource_type, name) for name in names)

    def authorized_operations(self, principal: str, host: str, resource_type: ResourceType, name: str,
                              candidates: Iterable[Operation]) -> int:
        """The bit field of Kafka's `authorized_operations` (bit n set: operation n allowed)."""
        bits = 0
        for operation in candidates:
            if self.authorize(principal, host, operation, resource_type, name):
                bits |= 1 << int(operation)
        return bits


# -- how bindings are stored (Kafka's ZooKeeper JSON) ------------------------------------------------

ResourceKey = tuple[str, str, str]  # (resource type name, "LITERAL" or "PREFIXED", resource name)

_RESOURCE_BY_NAME = {name: kind for kind, name in RESOURCE_NAMES.items()}
_OPERATION_BY_NAME = {name: op for op, name in OPERATION_NAMES.items()}
_PERMISSION_BY_NAME = {name: permission for permission, name in PERMISSION_NAMES.items()}


def resource_key(binding: AclBinding) -> ResourceKey:
    return RESOURCE_NAMES[binding.resource_type], binding.pattern_type.name, binding.resource_name


def stored_entry(binding: AclBinding) -> dict[str, str]:
    return {"principal": binding.principal, "permissionType": PERMISSION_NAMES[binding.permission],
            "operation": OPERATION_NAMES[binding.operation], "host": binding.host}


def from_stored(key: ResourceKey, entry: dict) -> AclBinding:
    """ValueError for an entry this version cannot read."""
    kind, pattern, name = key
    try:
        return AclBinding(_RESOURCE_BY_NAME[kind], name, PatternType[pattern], str(entry["principal"]),
                          str(entry["host"]), _OPERATION_BY_NAME[entry["operation"]],
                          _PERMISSION_BY_NAME[entry["permissionType"]])
    except KeyError as error:
        raise ValueError(f"unreadable ACL entry for {kind} {name!r}: {error}") from None
