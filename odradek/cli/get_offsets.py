"""`odradek get-offsets`: earliest, latest, max-timestamp or by-time offsets per partition (kafka-get-offsets)."""

from __future__ import annotations

import argparse

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, run_with_client
from odradek.cli.output import print_json, print_table
from odradek.client import EARLIEST, LATEST, MAX_TIMESTAMP, KafkaClient, TopicPartition, list_offsets

__all__ = ["register", "run"]

EXAMPLES = """
  odradek get-offsets --topic kaninitopic                    # latest (log end) offsets
  odradek get-offsets --topic kaninitopic --time earliest
  odradek get-offsets --topic kaninitopic --time 1700000000000 --partitions 0,2
  odradek get-offsets --topic kaninitopic --time max-timestamp --output json
"""

TIME_NAMES = {"latest": LATEST, "-1": LATEST, "earliest": EARLIEST, "-2": EARLIEST, "max-timestamp": MAX_TIMESTAMP, "-3": MAX_TIMESTAMP}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "get-offsets",
        help="offsets per partition: earliest, latest or at a time",
        description="Offsets per partition of a topic (kafka-get-offsets): the earliest, the latest (log end), "
        "the record with the largest timestamp, or the first at or after a timestamp in ms.",
        examples=EXAMPLES,
    )
    parser.add_argument("--topic", required=True, help="the topic")
    parser.add_argument("--time", default="latest", metavar="earliest|latest|max-timestamp|MS", help="which offset (default: latest)")
    parser.add_argument("--partitions", metavar="P,P", help="only these partitions (default: all)")
    add_client_arguments(parser)
    parser.set_defaults(func=run)


def parse_time(text: str) -> int:
    value = TIME_NAMES.get(text.lower())
    if value is not None:
        return value
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--time must be earliest, latest, max-timestamp or a timestamp in ms, not '{text}'") from None
    if value < 0:
        raise UsageError(f"--time must be earliest (-2), latest (-1), max-timestamp (-3) or a timestamp >= 0, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    spec = parse_time(args.time)
    wanted = None
    if args.partitions:
        try:
            wanted = sorted({int(p) for p in args.partitions.split(",") if p.strip()})
        except ValueError:
            raise UsageError(f"--partitions must be comma-separated numbers, not '{args.partitions}'") from None
    return run_with_client(args, lambda client: get_offsets(client, args, spec, wanted))


async def get_offsets(client: KafkaClient, args: argparse.Namespace, spec: int, wanted: list[int] | None) -> int:
    cluster = await client.topic_metadata([args.topic])
    partitions = cluster.partitions_of(args.topic)
    if wanted is not None:
        missing = [p for p in wanted if TopicPartition(args.topic, p) not in partitions]
        if missing:
            raise UsageError(f"topic '{args.topic}' has no partition {missing[0]} (partitions 0..{len(partitions) - 1})")
        partitions = [TopicPartition(args.topic, p) for p in wanted]
    found = await list_offsets(client, {tp: spec for tp in partitions})
    rows = [(tp.topic, tp.partition, offset, timestamp) for tp, (offset, timestamp) in sorted(found.items())]
    if args.output == "json":
        print_json([{"topic": t, "partition": p, "offset": o if o >= 0 else None, "timestamp": ts if ts >= 0 else None} for t, p, o, ts in rows])
    else:
        print_table(["topic", "partition", "offset", "timestamp"], [(t, p, o if o >= 0 else None, ts if ts >= 0 else None) for t, p, o, ts in rows])
    return 0
