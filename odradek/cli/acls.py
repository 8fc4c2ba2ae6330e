"""`odradek acls`: add, list and remove ACLs, with kafka-acls' flags and our output style."""

from __future__ import annotations

import argparse

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, run_with_client
from odradek.cli.output import print_json, print_table
from odradek.client import Admin, KafkaClient
from odradek.security.acl import (
    CLUSTER_NAME,
    OPERATION_NAMES,
    PERMISSION_NAMES,
    RESOURCE_NAMES,
    WILDCARD,
    AclBinding,
    AclError,
    AclFilter,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    validate,
)

__all__ = ["register", "run"]

EXAMPLES = """
  odradek acls --add --allow-principal User:alice --operation Read --operation Write --topic orders
  odradek acls --add --allow-principal User:alice --operation Read --group billing
  odradek acls --add --allow-principal User:alice --operation Write --topic logs- --resource-pattern-type prefixed
  odradek acls --add --deny-principal User:bob --operation All --topic payments
  odradek acls --add --allow-principal User:ops --operation Alter --cluster
  odradek acls --list
  odradek acls --list --topic orders --principal User:alice
  odradek acls --remove --allow-principal User:alice --operation Write --topic orders
"""

_OPERATIONS = {name.lower(): op for op, name in OPERATION_NAMES.items()}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "acls",
        help="add, list and remove ACLs",
        description="Add, list and remove ACLs with kafka-acls' flags. The broker must run with authorizer.class.name "
        "set, and you must be allowed Alter (add, remove) or Describe (list) on the cluster, or be a super user.",
        examples=EXAMPLES,
    )
    actions = parser.add_argument_group("action (exactly one)").add_mutually_exclusive_group(required=True)
    actions.add_argument("--add", action="store_true", help="add the ACLs described by the flags")
    actions.add_argument("--remove", action="store_true", help="remove the ACLs matching the flags")
    actions.add_argument("--list", action="store_true", help="list ACLs (of the given resource, or all)")
    resources = parser.add_argument_group("resources")
    resources.add_argument("--topic", action="append", default=[], metavar="TOPIC", help="a topic (* for all)")
    resources.add_argument("--group", action="append", default=[], metavar="GROUP", help="a consumer group (* for all)")
    resources.add_argument("--transactional-id", action="append", default=[], metavar="ID", help="a transactional id")
    resources.add_argument("--cluster", action="store_true", help="the cluster (kafka-cluster)")
    resources.add_argument("--resource-pattern-type", default=None, choices=("literal", "prefixed", "match", "any"),
                           type=str.lower, help="literal (default for --add) or prefixed; with --list/--remove also "
                           "match and any (default)")
    who = parser.add_argument_group("who and what")
    who.add_argument("--allow-principal", action="append", default=[], metavar="TYPE:NAME", help="e.g. User:alice, User:*")
    who.add_argument("--deny-principal", action="append", default=[], metavar="TYPE:NAME")
    who.add_argument("--allow-host", action="append", default=[], metavar="HOST", help="default * (every host)")
    who.add_argument("--deny-host", action="append", default=[], metavar="HOST", help="default * (every host)")
    who.add_argument("--operation", action="append", default=[], metavar="OP", type=str.lower,
                     help="Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, "
                     "IdempotentWrite, All (repeatable; default All)")
    who.add_argument("--principal", action="append", default=[], metavar="TYPE:NAME", help="with --list: only this principal's ACLs")
    parser.add_argument("--force", action="store_true", help="accepted for kafka-acls compatibility (odradek never asks)")
    add_client_arguments(parser)
    parser.set_defaults(func=run)


def _resources(args: argparse.Namespace) -> list[tuple[ResourceType, str]]:
    found = [(ResourceType.TOPIC, t) for t in args.topic] + [(ResourceType.GROUP, g) for g in args.group]
    found += [(ResourceType.TRANSACTIONAL_ID, t) for t in args.transactional_id]
    if args.cluster:
        found.append((ResourceType.CLUSTER, CLUSTER_NAME))
    return found


def _operations(args: argparse.Namespace) -> list[Operation]:
    names = args.operation or ["all"]
    unknown = [n for n in names if n.replace("-", "").replace("_", "") not in _OPERATIONS]
    if unknown:
        raise UsageError(f"unknown --operation {unknown[0]!r}; one of {', '.join(OPERATION_NAMES.values())}")
    return [_OPERATIONS[n.replace("-", "").replace("_", "")] for n in names]


def _bindings(args: argparse.Namespace) -> list[AclBinding]:
    resources = _resources(args)
    if not resources:
        raise UsageError("name a resource: --topic, --group, --transactional-id or --cluster")
    if not args.allow_principal and not args.deny_principal:
        raise UsageError("name who: --allow-principal or --deny-principal")
    pattern = PatternType[(args.resource_pattern_type or "literal").upper()]
    if pattern not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise UsageError("--add takes --resource-pattern-type literal or prefixed")
    bindings = []
    for permission, principals, hosts in ((Permission.ALLOW, args.allow_principal, args.allow_host or [WILDCARD]),
                                          (Permission.DENY, args.deny_principal, args.deny_host or [WILDCARD])):
        for resource_type, name in resources:
            for principal in principals:
                for host in hosts:
                    for operation in _operations(args):
                        binding = AclBinding(resource_type, name, pattern, principal, host, operation, permission)
                        try:
                            validate(binding)
                        except AclError as error:
                            raise UsageError(str(error)) from None
                        bindings.append(binding)
    return bindings


def _filters(args: argparse.Namespace) -> list[AclFilter]:
    """What --list and --remove match: per resource (or everything), narrowed by the other flags."""
    pattern = PatternType[(args.resource_pattern_type or ("literal" if args.remove and _resources(args) else "any")).upper()]
    principals = args.principal or args.allow_principal or args.deny_principal or [None]
    permission = Permission.ANY
    if args.allow_principal and not args.deny_principal:
        permission = Permission.ALLOW
    elif args.deny_principal and not args.allow_principal:
        permission = Permission.DENY
    operations = _operations(args) if args.operation else [Operation.ANY]
    hosts = args.allow_host or args.deny_host or [None]
    resources = _resources(args) or [(ResourceType.ANY, None)]
    return [AclFilter(kind, name, pattern, principal, host, operation, permission)
            for kind, name in resources for principal in principals for host in hosts for operation in operations]


def _rows(bindings: list[AclBinding]) -> list[tuple]:
    return [(RESOURCE_NAMES[b.resource_type], b.resource_name, b.pattern_type.name, b.principal, b.host,
             OPERATION_NAMES[b.operation], PERMISSION_NAMES[b.permission])
            for b in sorted(bindings, key=lambda b: (b.resource_type, b.resource_name, b.pattern_type, b.principal,
                                                      b.operation, b.permission, b.host))]


def _show(args: argparse.Namespace, bindings: list[AclBinding], heading: str) -> None:
    rows = _rows(bindings)
    if args.output == "json":
        print_json([dict(zip(("resource_type", "resource_name", "pattern_type", "principal", "host", "operation",
                                  "permission"), row)) for row in rows])
        return
    print(heading)
    print_table(["resource", "name", "pattern", "principal", "host", "operation", "permission"], rows)


def run(args: argparse.Namespace) -> int:
    if args.add:
        bindings = _bindings(args)
        return run_with_client(args, lambda client: add(client, args, bindings))
    filters = _filters(args)
    if args.remove:
        if not _resources(args) and not (args.allow_principal or args.deny_principal or args.principal):
            raise UsageError("--remove needs a resource or a principal (refusing to remove every ACL)")
        return run_with_client(args, lambda client: remove(client, args, filters))
    return run_with_client(args, lambda client: list_acls(client, args, filters))


async def add(client: KafkaClient, args, bindings: list[AclBinding]) -> int:
    errors = await Admin(client).create_acls(bindings)
    failed = [error for error in errors if error is not None]
    if failed:
        raise failed[0]
    _show(args, bindings, f"Added {len(bindings)} ACL(s):")
    return 0


async def list_acls(client: KafkaClient, args, filters: list[AclFilter]) -> int:
    admin = Admin(client)
    found: dict[AclBinding, None] = {}
    for acl_filter in filters:
        for binding in await admin.describe_acls(acl_filter):
            found[binding] = None
    _show(args, list(found), f"{len(found)} ACL(s):")
    return 0


async def remove(client: KafkaClient, args, filters: list[AclFilter]) -> int:
    removed: dict[AclBinding, None] = {}
    for result in await Admin(client).delete_acls(filters):
        if isinstance(result, Exception):
            raise result
        removed.update(dict.fromkeys(result))
    _show(args, list(removed), f"Removed {len(removed)} ACL(s):")
    return 0
