"""`odradek configs`: describe and alter topic, broker and group configs (kafka-configs' flags)."""

from __future__ import annotations

import argparse

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, parse_key_values, run_with_client, split_config_list
from odradek.cli.output import print_json, print_table
from odradek.client import Admin, KafkaClient
from odradek.client.admin import RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC, RESOURCE_TYPES

__all__ = ["register", "run"]

EXAMPLES = """
  odradek configs --describe --entity-type topics --entity-name kaninitopic
  odradek configs --describe --entity-type topics --entity-name kaninitopic --all
  odradek configs --describe --entity-type brokers --entity-name 0
  odradek configs --alter --entity-type topics --entity-name kaninitopic \\
      --add-config retention.ms=86400000,cleanup.policy=[compact,delete]
  odradek configs --alter --entity-type topics --entity-name kaninitopic --delete-config retention.ms
  odradek configs --alter --entity-type brokers --entity-default --add-config log.retention.ms=3600000
  odradek configs --alter --entity-type groups --entity-name my-group --add-config consumer.session.timeout.ms=50000
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "configs",
        help="describe and alter topic, broker and group configs",
        description="Describe and alter topic, broker and group configs, with kafka-configs' flags. --describe shows the "
        "configs set on the entity; --all shows every config with its source.",
        examples=EXAMPLES,
    )
    actions = parser.add_argument_group("action (exactly one)").add_mutually_exclusive_group(required=True)
    actions.add_argument("--describe", action="store_true", help="show configs")
    actions.add_argument("--alter", action="store_true", help="set (--add-config) or remove (--delete-config) configs")
    parser.add_argument("--entity-type", choices=("topics", "brokers", "groups"), help="what to configure")
    parser.add_argument("--entity-name", metavar="NAME", help="the topic name, broker id or group id")
    parser.add_argument("--entity-default", action="store_true", help="with brokers: the cluster-wide default")
    parser.add_argument("--topic", metavar="TOPIC", help="shorthand for --entity-type topics --entity-name TOPIC")
    parser.add_argument("--broker", metavar="ID", help="shorthand for --entity-type brokers --entity-name ID")
    parser.add_argument("--add-config", action="append", default=[], metavar="K=V[,K2=V2]", help="configs to set; [a,b] for a list value")
    parser.add_argument("--delete-config", action="append", default=[], metavar="K[,K2]", help="configs to remove (back to the default)")
    parser.add_argument("--all", action="store_true", help="with --describe: every config, defaults included")
    add_client_arguments(parser)
    parser.set_defaults(func=run)


def _entity(args: argparse.Namespace) -> tuple[int, str | None]:
    entity_type, name = args.entity_type, args.entity_name
    if args.topic:
        entity_type, name = "topics", args.topic
    if args.broker:
        entity_type, name = "brokers", args.broker
    if entity_type is None:
        raise UsageError("--entity-type (topics, brokers or groups) is required")
    if args.entity_default:
        if entity_type != "brokers":
            raise UsageError("--entity-default applies to brokers only")
        name = ""
    if entity_type == "groups" and not name:
        raise UsageError("--entity-type groups needs --entity-name GROUP")
    return RESOURCE_TYPES[entity_type], name


def run(args: argparse.Namespace) -> int:
    resource_type, name = _entity(args)
    if args.alter:
        if name is None:
            raise UsageError("--alter needs --entity-name (or --entity-default for brokers)")
        set_configs = parse_key_values(args.add_config, "--add-config")
        delete_configs = [k for item in args.delete_config for k in split_config_list(item)]
        if not set_configs and not delete_configs:
            raise UsageError("--alter needs --add-config or --delete-config")
        return run_with_client(args, lambda client: alter(client, args, resource_type, name, set_configs, delete_configs))
    return run_with_client(args, lambda client: describe(client, args, resource_type, name))


def _label(resource_type: int, name: str) -> str:
    if resource_type == RESOURCE_BROKER:
        return "default brokers" if name == "" else f"broker {name}"
    if resource_type == RESOURCE_GROUP:
        return f"group {name}"
    return f"topic {name}"


async def alter(client: KafkaClient, args, resource_type: int, name: str, set_configs: dict, delete_configs: list) -> int:
    if resource_type == RESOURCE_TOPIC:
        await client.topic_metadata([name])  # unknown topic: a clear error before altering
    await Admin(client).incremental_alter_configs(resource_type, name, set_configs=set_configs, delete_configs=delete_configs)
    if args.output == "json":
        print_json({"entity": _label(resource_type, name), "set": set_configs, "deleted": delete_configs})
    else:
        print(f"Completed updating config for {_label(resource_type, name)}.")
    return 0


async def describe(client: KafkaClient, args, resource_type: int, name: str | None) -> int:
    admin = Admin(client)
    if name is not None:
        names = [name]
        if resource_type == RESOURCE_TOPIC:
            await client.topic_metadata([name])
    elif resource_type == RESOURCE_TOPIC:
        names = sorted((await admin.list_topics(include_internal=False)).topics)
    else:
        names = [str(n) for n in sorted((await client.refresh_metadata(topics=[])).brokers)]
    report = []
    for entity in names:
        entries = await admin.describe_configs(resource_type, entity)
        shown = [e for e in entries if args.all or not e.is_default]
        report.append((entity, shown))
    if args.output == "json":
        print_json(
            [
                {
                    "entity": _label(resource_type, entity),
                    "configs": [
                        {
                            "name": e.name,
                            "value": None if e.is_sensitive else e.value,
                            "source": e.source,
                            "read_only": e.read_only,
                            "sensitive": e.is_sensitive,
                            "synonyms": [{"name": s[0], "value": s[1], "source": s[2]} for s in e.synonyms],
                        }
                        for e in entries
                    ],
                }
                for entity, entries in report
            ]
        )
        return 0
    for index, (entity, entries) in enumerate(report):
        if index:
            print()
        kind = "All" if args.all else "Dynamic"
        print(f"{kind} configs for {_label(resource_type, entity)}:")
        print_table(
            ["name", "value", "source", "read-only"],
            [(e.name, "(sensitive)" if e.is_sensitive else e.value, e.source, e.read_only) for e in entries],
        )
    return 0
