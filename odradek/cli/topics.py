"""`odradek topics`: create, list, describe, alter and delete topics (kafka-topics.sh's flags)."""

from __future__ import annotations

import argparse
import sys

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, parse_key_values, run_with_client
from odradek.cli.output import print_json, print_table
from odradek.client import Admin, ErrorCode, KafkaClient, KafkaError, NewTopic
from odradek.client.admin import RESOURCE_TOPIC

__all__ = ["register", "run"]

EXAMPLES = """
  odradek topics --create --topic kaninitopic --partitions 3 --replication-factor 1
  odradek topics --create --topic events --config retention.ms=86400000 --if-not-exists
  odradek topics --list
  odradek topics --describe --topic kaninitopic
  odradek topics --describe --under-replicated-partitions
  odradek topics --alter --topic kaninitopic --partitions 6
  odradek topics --delete --topic kaninitopic --if-exists
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "topics",
        help="create, list, describe, alter and delete topics",
        description="Create, list, describe, alter and delete topics, with kafka-topics' flags.",
        examples=EXAMPLES,
    )
    actions = parser.add_argument_group("action (exactly one)").add_mutually_exclusive_group(required=True)
    for flag, help_text in (
        ("--create", "create a topic"),
        ("--list", "list topic names"),
        ("--describe", "show partitions, leaders, replicas and configs"),
        ("--alter", "add partitions (--partitions) or change configs (--config)"),
        ("--delete", "delete a topic"),
    ):
        actions.add_argument(flag, action="store_true", help=help_text)
    parser.add_argument("--topic", metavar="TOPIC", help="the topic (for --list/--describe: optional)")
    parser.add_argument("--partitions", type=int, metavar="N", help="partition count (default: the broker's num.partitions)")
    parser.add_argument("--replication-factor", type=int, metavar="N", help="replicas per partition (default: the broker's default.replication.factor)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="topic config (repeatable)")
    parser.add_argument("--if-not-exists", action="store_true", help="with --create: succeed if the topic exists")
    parser.add_argument("--if-exists", action="store_true", help="with --alter/--delete: succeed if the topic does not exist")
    parser.add_argument("--under-replicated-partitions", action="store_true", help="with --describe: only partitions whose ISR is smaller than their replica set")
    parser.add_argument("--exclude-internal", action="store_true", help="with --list/--describe: leave out internal topics")
    add_client_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configs = parse_key_values(args.config, "--config")
    if args.create:
        if not args.topic:
            raise UsageError("--create needs --topic")
        return run_with_client(args, lambda client: create(client, args, configs))
    if args.delete:
        if not args.topic:
            raise UsageError("--delete needs --topic")
        return run_with_client(args, lambda client: delete(client, args))
    if args.alter:
        if not args.topic:
            raise UsageError("--alter needs --topic")
        if args.partitions is None and not configs:
            raise UsageError("--alter needs --partitions or --config")
        return run_with_client(args, lambda client: alter(client, args, configs))
    if args.list:
        return run_with_client(args, lambda client: list_topics(client, args))
    return run_with_client(args, lambda client: describe(client, args))


async def create(client: KafkaClient, args: argparse.Namespace, configs: dict[str, str]) -> int:
    topic = NewTopic(
        args.topic,
        args.partitions if args.partitions is not None else -1,
        args.replication_factor if args.replication_factor is not None else -1,
        configs,
    )
    error = (await Admin(client).create_topics([topic]))[args.topic]
    if error is not None:
        if error.code == ErrorCode.topic_already_exists and args.if_not_exists:
            _report(args, {"topic": args.topic, "created": False}, f"Topic '{args.topic}' already exists.")
            return 0
        raise error
    _report(args, {"topic": args.topic, "created": True}, f"Created topic {args.topic}.")
    return 0


async def delete(client: KafkaClient, args: argparse.Namespace) -> int:
    error = (await Admin(client).delete_topics([args.topic]))[args.topic]
    if error is not None:
        if error.code == ErrorCode.unknown_topic_or_partition:
            if args.if_exists:
                _report(args, {"topic": args.topic, "deleted": False}, f"Topic '{args.topic}' does not exist.")
                return 0
            raise KafkaError(error.code, f"topic '{args.topic}' does not exist")
        raise error
    _report(args, {"topic": args.topic, "deleted": True}, f"Deleted topic {args.topic}.")
    return 0


async def alter(client: KafkaClient, args: argparse.Namespace, configs: dict[str, str]) -> int:
    admin = Admin(client)
    try:
        await admin.describe_topics([args.topic])
    except KafkaError as e:
        if e.code == ErrorCode.unknown_topic_or_partition and args.if_exists:
            _report(args, {"topic": args.topic, "altered": False}, f"Topic '{args.topic}' does not exist.")
            return 0
        raise
    if args.partitions is not None:
        error = (await admin.create_partitions({args.topic: args.partitions}))[args.topic]
        if error is not None:
            raise error
    if configs:
        await admin.incremental_alter_configs(RESOURCE_TOPIC, args.topic, set_configs=configs)
    _report(args, {"topic": args.topic, "altered": True}, f"Altered topic {args.topic}.")
    return 0


async def list_topics(client: KafkaClient, args: argparse.Namespace) -> int:
    cluster = await Admin(client).list_topics(include_internal=not args.exclude_internal)
    names = sorted(cluster.topics)
    if args.topic:
        names = [n for n in names if n == args.topic]
    if args.output == "json":
        print_json(names)
    else:
        for name in names:
            print(name)
    return 0


async def describe(client: KafkaClient, args: argparse.Namespace) -> int:
    admin = Admin(client)
    if args.topic:
        cluster = await admin.describe_topics([args.topic])
    else:
        cluster = await admin.list_topics(include_internal=not args.exclude_internal)
    topics = [cluster.topics[name] for name in sorted(cluster.topics)]
    described = []
    for topic in topics:
        partitions = [p for p in topic.partitions if not args.under_replicated_partitions or p.under_replicated]
        if args.under_replicated_partitions and not partitions:
            continue
        described.append((topic, partitions, await _topic_configs(admin, topic.name)))
    if args.output == "json":
        print_json(
            [
                {
                    "topic": t.name,
                    "topic_id": str(t.topic_id) if t.topic_id else None,
                    "internal": t.is_internal,
                    "partition_count": len(t.partitions),
                    "replication_factor": t.replication_factor,
                    "configs": configs,
                    "partitions": [
                        {
                            "partition": p.partition,
                            "leader": p.leader_id,
                            "leader_epoch": p.leader_epoch,
                            "replicas": list(p.replica_nodes),
                            "isr": list(p.isr_nodes),
                            "offline": list(p.offline_replicas),
                        }
                        for p in partitions
                    ],
                }
                for t, partitions, configs in described
            ]
        )
        return 0
    for index, (topic, partitions, configs) in enumerate(described):
        if index:
            print()
        config_text = ",".join(f"{k}={v}" for k, v in sorted(configs.items())) or "-"
        print(
            f"Topic: {topic.name}  TopicId: {topic.topic_id or '-'}  PartitionCount: {len(topic.partitions)}  "
            f"ReplicationFactor: {topic.replication_factor}  Configs: {config_text}"
        )
        print_table(
            ["partition", "leader", "replicas", "isr", "offline"],
            [(p.partition, p.leader_id if p.leader_id >= 0 else "none", p.replica_nodes, p.isr_nodes, p.offline_replicas) for p in partitions],
        )
    sys.stdout.flush()
    return 0


async def _topic_configs(admin: Admin, topic: str) -> dict[str, str | None]:
    """The topic's non-default configs; empty when the broker cannot describe configs."""
    try:
        entries = await admin.describe_configs(RESOURCE_TOPIC, topic, include_synonyms=False)
    except KafkaError as e:
        if e.code == ErrorCode.unsupported_version:
            return {}
        raise
    return {e.name: (None if e.is_sensitive else e.value) for e in entries if not e.is_default}


def _report(args: argparse.Namespace, value: dict, line: str) -> None:
    if args.output == "json":
        print_json(value)
    else:
        print(line)
