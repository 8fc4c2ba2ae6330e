"""`odradek groups`: list, describe, reset offsets of, delete consumer groups (kafka-consumer-groups)."""

from __future__ import annotations

import argparse
import datetime
import re

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, run_with_client, warn
from odradek.cli.output import print_json, print_table
from odradek.client import EARLIEST, LATEST, Admin, ErrorCode, KafkaClient, KafkaError, TopicPartition, list_offsets, raise_errors

__all__ = ["register", "run"]

EXAMPLES = """
  odradek groups --list
  odradek groups --describe --group my-app
  odradek groups --describe --group my-app --members
  odradek groups --reset-offsets --group my-app --topic kaninitopic --to-earliest            # dry run
  odradek groups --reset-offsets --group my-app --topic kaninitopic:0,1 --shift-by -10 --execute
  odradek groups --reset-offsets --group my-app --all-topics --to-datetime 2024-01-01T00:00:00.000 --execute
  odradek groups --delete-offsets --group my-app --topic kaninitopic
  odradek groups --delete --group my-app
"""

SCENARIOS = ("to_earliest", "to_latest", "to_current", "to_datetime", "to_offset", "shift_by", "by_duration")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "groups",
        help="list, describe, reset and delete consumer groups",
        description="List, describe, reset the offsets of and delete consumer groups, with kafka-consumer-groups' flags.",
        examples=EXAMPLES,
    )
    actions = parser.add_argument_group("action (exactly one)").add_mutually_exclusive_group(required=True)
    actions.add_argument("--list", action="store_true", help="list groups")
    actions.add_argument("--describe", action="store_true", help="committed offset, log end and lag per partition, with the owning member")
    actions.add_argument("--reset-offsets", action="store_true", help="move committed offsets (dry run unless --execute)")
    actions.add_argument("--delete", action="store_true", help="delete groups without members")
    actions.add_argument("--delete-offsets", action="store_true", help="delete the group's committed offsets of --topic")
    parser.add_argument("--group", action="append", default=[], metavar="GROUP", help="the group (repeatable)")
    parser.add_argument("--all-groups", action="store_true", help="every group (with --describe, --reset-offsets, --delete)")
    parser.add_argument("--topic", action="append", default=[], metavar="TOPIC[:P,P]", help="topic, optionally with partitions (repeatable)")
    parser.add_argument("--all-topics", action="store_true", help="with --reset-offsets: every topic the group has offsets for")
    parser.add_argument("--members", action="store_true", help="with --describe: list members instead of offsets")
    parser.add_argument("--state", action="store_true", help="with --describe: show the group's state")
    scenario = parser.add_argument_group("reset scenario (exactly one, with --reset-offsets)").add_mutually_exclusive_group()
    scenario.add_argument("--to-earliest", action="store_true", help="the earliest offset")
    scenario.add_argument("--to-latest", action="store_true", help="the log end offset")
    scenario.add_argument("--to-current", action="store_true", help="the committed offset (no change)")
    scenario.add_argument("--to-datetime", metavar="YYYY-MM-DDTHH:mm:SS.sss[Z|+hh:mm]", help="the first offset at or after this time (local time without a zone)")
    scenario.add_argument("--to-offset", type=int, metavar="N", help="this offset (kept within earliest..latest)")
    scenario.add_argument("--shift-by", type=int, metavar="N", help="move the committed offset by N (may be negative)")
    scenario.add_argument("--by-duration", metavar="PnDTnHnMnS", help="the first offset at or after now minus this ISO-8601 duration")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only show the new offsets (the default)")
    mode.add_argument("--execute", action="store_true", help="commit the new offsets")
    add_client_arguments(parser)
    parser.set_defaults(func=run)


def parse_topic_partitions(items: list[str]) -> dict[str, list[int] | None]:
    """`topic` or `topic:0,1` -> {topic: None (all) | [partitions]}."""
    result: dict[str, list[int] | None] = {}
    for item in items:
        topic, sep, numbers = item.partition(":")
        if not topic:
            raise UsageError(f"malformed --topic '{item}': expected TOPIC or TOPIC:P,P")
        if not sep:
            result[topic] = None
            continue
        try:
            result[topic] = sorted({int(n) for n in numbers.split(",") if n.strip()})
        except ValueError:
            raise UsageError(f"malformed --topic '{item}': partitions must be numbers") from None
    return result


def parse_datetime_ms(text: str) -> int:
    """Kafka's --to-datetime format, `YYYY-MM-DDTHH:mm:SS.sss` with an optional zone; ms since epoch."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--to-datetime '{text}' is not YYYY-MM-DDTHH:mm:SS.sss (optionally with Z or +hh:mm)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", re.IGNORECASE)


def parse_duration_ms(text: str) -> int:
    """An ISO-8601 duration as Kafka accepts it (PnDTnHnMnS); milliseconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or text.strip().upper() in ("P", "PT"):
        raise UsageError(f"--by-duration '{text}' is not an ISO-8601 duration like PT1H30M or P1DT2H")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return int(((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000)


def run(args: argparse.Namespace) -> int:
    if not args.list and not args.group and not args.all_groups:
        raise UsageError("this action needs --group (or --all-groups)")
    if args.reset_offsets:
        chosen = [s for s in SCENARIOS if getattr(args, s) is not None and getattr(args, s) is not False]
        if not chosen:
            raise UsageError("--reset-offsets needs a scenario: --to-earliest, --to-latest, --to-current, --to-datetime, --to-offset, --shift-by or --by-duration")
        if not args.topic and not args.all_topics:
            raise UsageError("--reset-offsets needs --topic or --all-topics")
        if args.to_datetime is not None:
            parse_datetime_ms(args.to_datetime)
        if args.by_duration is not None:
            parse_duration_ms(args.by_duration)
        if not args.execute and not args.dry_run:
            warn("no action is performed without --execute; showing the new offsets (dry run)")
    if args.delete_offsets and not args.topic:
        raise UsageError("--delete-offsets needs --topic")
    action = {
        "list": list_groups,
        "describe": describe,
        "reset_offsets": reset_offsets,
        "delete": delete,
        "delete_offsets": delete_offsets,
    }
    for name, function in action.items():
        if getattr(args, name):
            return run_with_client(args, lambda client: function(client, args))
    raise AssertionError("argparse requires one action")


async def _group_ids(admin: Admin, args: argparse.Namespace) -> list[str]:
    if args.all_groups:
        return [g.group_id for g in await admin.list_groups()]
    return list(dict.fromkeys(args.group))


async def list_groups(client: KafkaClient, args: argparse.Namespace) -> int:
    groups = await Admin(client).list_groups()
    if args.output == "json":
        print_json([{"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type, "type": g.group_type} for g in groups])
    else:
        print_table(["group", "state", "type", "protocol-type"], [(g.group_id, g.state, g.group_type, g.protocol_type or "-") for g in groups])
    return 0


async def describe(client: KafkaClient, args: argparse.Namespace) -> int:
    admin = Admin(client)
    report = []
    for group_id in await _group_ids(admin, args):
        description = await admin.describe_group(group_id)
        if description.error is not None:
            if description.error.code == ErrorCode.group_id_not_found:
                raise KafkaError(ErrorCode.group_id_not_found, f"consumer group '{group_id}' does not exist")
            raise description.error
        committed = await admin.committed_offsets(group_id)
        if description.state == "Dead" and not committed:
            raise KafkaError(ErrorCode.group_id_not_found, f"consumer group '{group_id}' does not exist")
        owners = {tp: m for m in description.members for tp in m.assignment}
        partitions = sorted(set(committed) | set(owners))
        ends = await _log_end_offsets(client, partitions)
        rows = []
        for tp in partitions:
            current = committed.get(tp, -1)
            end = ends.get(tp)
            lag = end - current if end is not None and current >= 0 else None
            member = owners.get(tp)
            rows.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "current_offset": current if current >= 0 else None,
                    "log_end_offset": end,
                    "lag": lag,
                    "consumer_id": member.member_id if member else None,
                    "host": member.client_host if member else None,
                    "client_id": member.client_id if member else None,
                }
            )
        members = [
            {
                "consumer_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "host": m.client_host,
                "client_id": m.client_id,
                "assignment": [str(tp) for tp in m.assignment],
            }
            for m in description.members
        ]
        report.append({"group": group_id, "state": description.state, "protocol": description.protocol, "offsets": rows, "members": members})
    if args.output == "json":
        print_json(report)
        return 0
    for index, group in enumerate(report):
        if index:
            print()
        if args.state or args.members:
            print(f"Group {group['group']} is {group['state']} with {len(group['members'])} member(s), assignor {group['protocol'] or '-'}.")
        if args.members:
            print_table(
                ["consumer-id", "group-instance-id", "host", "client-id", "#partitions", "assignment"],
                [(m["consumer_id"], m["group_instance_id"], m["host"], m["client_id"], len(m["assignment"]), m["assignment"]) for m in group["members"]],
            )
        elif not args.state:
            if not group["members"]:
                print(f"Consumer group '{group['group']}' has no active members.")
            print_table(
                ["group", "topic", "partition", "current-offset", "log-end-offset", "lag", "consumer-id", "host", "client-id"],
                [
                    (group["group"], r["topic"], r["partition"], r["current_offset"], r["log_end_offset"], r["lag"], r["consumer_id"], r["host"], r["client_id"])
                    for r in group["offsets"]
                ],
            )
    return 0


async def _log_end_offsets(client: KafkaClient, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    ends: dict[TopicPartition, int] = {}
    for topic in sorted({tp.topic for tp in partitions}):
        wanted = [tp for tp in partitions if tp.topic == topic]
        try:
            found = await list_offsets(client, {tp: LATEST for tp in wanted})
        except KafkaError as e:
            if e.code == ErrorCode.unknown_topic_or_partition:
                continue  # offsets of a deleted topic: no log end to show
            raise
        ends.update({tp: offset for tp, (offset, _ts) in found.items()})
    return ends


async def reset_offsets(client: KafkaClient, args: argparse.Namespace) -> int:
    admin = Admin(client)
    report = []
    for group_id in await _group_ids(admin, args):
        description = await admin.describe_group(group_id)
        if args.execute and description.state not in ("Empty", "Dead"):
            raise KafkaError(
                ErrorCode.non_empty_group,
                f"consumer group '{group_id}' is {description.state} with {len(description.members)} member(s): "
                "stop its consumers before resetting offsets",
            )
        committed = await admin.committed_offsets(group_id)
        partitions = await _reset_partitions(client, args, committed)
        if not partitions:
            raise UsageError(f"no partitions to reset for group '{group_id}'")
        targets = await _targets(client, args, partitions, committed)
        if args.execute:
            raise_errors(await admin.alter_group_offsets(group_id, targets))
        report.extend({"group": group_id, "topic": tp.topic, "partition": tp.partition, "new_offset": offset} for tp, offset in sorted(targets.items()))
    if args.output == "json":
        print_json(report)
    else:
        print_table(["group", "topic", "partition", "new-offset"], [(r["group"], r["topic"], r["partition"], r["new_offset"]) for r in report])
    return 0


async def _reset_partitions(client: KafkaClient, args: argparse.Namespace, committed: dict[TopicPartition, int]) -> list[TopicPartition]:
    if args.all_topics:
        return sorted(committed)
    wanted = parse_topic_partitions(args.topic)
    cluster = await client.topic_metadata(list(wanted))
    partitions = []
    for topic, numbers in wanted.items():
        existing = cluster.partitions_of(topic)
        if numbers is None:
            partitions.extend(existing)
            continue
        for number in numbers:
            tp = TopicPartition(topic, number)
            if tp not in existing:
                raise KafkaError(ErrorCode.unknown_topic_or_partition, f"topic '{topic}' has no partition {number}")
            partitions.append(tp)
    return partitions


async def _targets(client: KafkaClient, args: argparse.Namespace, partitions: list[TopicPartition], committed: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    earliest = {tp: o for tp, (o, _t) in (await list_offsets(client, {tp: EARLIEST for tp in partitions})).items()}
    latest = {tp: o for tp, (o, _t) in (await list_offsets(client, {tp: LATEST for tp in partitions})).items()}

    def clamp(tp: TopicPartition, offset: int) -> int:
        return max(earliest[tp], min(latest[tp], offset))

    def current(tp: TopicPartition) -> int:
        offset = committed.get(tp, -1)
        return offset if offset >= 0 else earliest[tp]

    if args.to_earliest:
        return dict(earliest)
    if args.to_latest:
        return dict(latest)
    if args.to_current:
        return {tp: clamp(tp, current(tp)) for tp in partitions}
    if args.to_offset is not None:
        return {tp: clamp(tp, args.to_offset) for tp in partitions}
    if args.shift_by is not None:
        return {tp: clamp(tp, current(tp) + args.shift_by) for tp in partitions}
    if args.to_datetime is not None:
        timestamp = parse_datetime_ms(args.to_datetime)
    else:
        timestamp = client.clock.now_ms() - parse_duration_ms(args.by_duration)
    found = await list_offsets(client, {tp: timestamp for tp in partitions})
    return {tp: (offset if offset >= 0 else latest[tp]) for tp, (offset, _t) in found.items()}


async def delete(client: KafkaClient, args: argparse.Namespace) -> int:
    admin = Admin(client)
    group_ids = await _group_ids(admin, args)
    results = await admin.delete_groups(group_ids)
    failed = {g: e for g, e in results.items() if e is not None}
    if args.output == "json":
        print_json([{"group": g, "error": None if e is None else str(e)} for g, e in results.items()])
    if failed:
        group_id, error = next(iter(failed.items()))
        if error.code == ErrorCode.group_id_not_found:
            raise KafkaError(error.code, f"consumer group '{group_id}' does not exist")
        if error.code == ErrorCode.non_empty_group:
            raise KafkaError(error.code, f"consumer group '{group_id}' is not empty: stop its consumers first")
        raise error
    if args.output != "json":
        names = ", ".join(f"'{g}'" for g in group_ids)
        print(f"Deletion of requested consumer groups ({names}) was successful.")
    return 0


async def delete_offsets(client: KafkaClient, args: argparse.Namespace) -> int:
    admin = Admin(client)
    if len(args.group) != 1:
        raise UsageError("--delete-offsets takes exactly one --group")
    group_id = args.group[0]
    wanted = parse_topic_partitions(args.topic)
    cluster = await client.topic_metadata(list(wanted))
    partitions = []
    for topic, numbers in wanted.items():
        partitions.extend(cluster.partitions_of(topic) if numbers is None else [TopicPartition(topic, n) for n in numbers])
    results = await admin.delete_offsets(group_id, partitions)
    rows = [(tp.topic, tp.partition, "Successful" if e is None else f"Error: {e}") for tp, e in sorted(results.items())]
    if args.output == "json":
        print_json([{"topic": t, "partition": p, "status": s} for t, p, s in rows])
    else:
        print_table(["topic", "partition", "status"], rows)
    errors = [e for e in results.values() if e is not None]
    if errors:
        raise errors[0]
    return 0
