"""`odradek consume`: print records of a topic (kafka-console-consumer's flags and format).

Without --group it reads the chosen partitions directly (from the latest offset unless
--from-beginning or --offset). With --group it joins that consumer group (range assignor),
starts at the group's committed offsets, commits every few seconds and when it stops. It stops
after --max-messages, after --timeout-ms without a record, or on Ctrl-C / SIGTERM, always
cleanly: commit (in a group), leave the group, print how many records were processed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import sys

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, parse_key_values, run_with_client, warn
from odradek.client import EARLIEST, LATEST, Consumer, GroupMember, KafkaClient, TopicPartition
from odradek.client.consumer import READ_COMMITTED, READ_UNCOMMITTED

__all__ = ["register", "run"]

EXAMPLES = """
  odradek consume --topic kaninitopic --from-beginning
  odradek consume --topic kaninitopic --from-beginning --max-messages 10 \\
      --property print.key=true --property print.offset=true --property print.partition=true
  odradek consume --topic kaninitopic --partition 0 --offset 42
  odradek consume --topic kaninitopic --group my-app --timeout-ms 5000
  odradek consume --topic kaninitopic --from-beginning --output json
"""

KNOWN_PROPERTIES = {
    "print.key",
    "print.value",
    "print.timestamp",
    "print.headers",
    "print.partition",
    "print.offset",
    "key.separator",
    "line.separator",
    "headers.separator",
    "headers.key.separator",
    "null.literal",
}
AUTO_COMMIT_INTERVAL_S = 5.0
POLL_WAIT_MS = 500


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "consume",
        help="print records of a topic",
        description="Print records of a topic (kafka-console-consumer), alone or as a member of a consumer group.",
        examples=EXAMPLES,
    )
    parser.add_argument("--topic", required=True, help="topic to read")
    parser.add_argument("--from-beginning", action="store_true", help="start at the earliest offset (in a group: when it has no committed offset)")
    parser.add_argument("--offset", metavar="N|earliest|latest", help="start offset in --partition (default: latest)")
    parser.add_argument("--partition", type=int, metavar="N", help="read only this partition")
    parser.add_argument("--group", metavar="GROUP", help="consume as a member of this consumer group, committing offsets")
    parser.add_argument("--max-messages", type=int, metavar="N", help="stop after N records")
    parser.add_argument("--isolation-level", choices=("read_uncommitted", "read_committed"), default="read_uncommitted")
    parser.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="print.key, print.timestamp, print.headers, print.partition, print.offset, print.value (=true/false), "
        "key.separator, line.separator, headers.separator, headers.key.separator, null.literal (repeatable)",
    )
    add_client_arguments(
        parser,
        timeout_help="stop when no record arrives for this long; also the time allowed to reach a broker (default: wait for records forever, 10000 to connect)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    properties = parse_key_values(args.property, "--property")
    for key in sorted(set(properties) - KNOWN_PROPERTIES):
        warn(f"ignoring unknown --property '{key}'")
    if args.group and (args.partition is not None or args.offset is not None):
        raise UsageError("--group cannot be combined with --partition or --offset (the group assigns partitions and tracks offsets)")
    if args.offset is not None and args.partition is None:
        raise UsageError("--offset needs --partition")
    if args.offset is not None and args.from_beginning:
        raise UsageError("--offset and --from-beginning are alternatives; give one")
    if args.max_messages is not None and args.max_messages <= 0:
        raise UsageError(f"--max-messages must be positive, not {args.max_messages}")
    start = _start_offset(args)
    formatter = RecordFormatter(properties, json_output=args.output == "json")
    return run_with_client(args, lambda client: consume(client, args, start, formatter))


def _start_offset(args: argparse.Namespace) -> int:
    if args.offset is None:
        return EARLIEST if args.from_beginning else LATEST
    text = args.offset.lower()
    if text == "earliest":
        return EARLIEST
    if text == "latest":
        return LATEST
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--offset must be a number, earliest or latest, not '{args.offset}'") from None
    if value < 0:
        raise UsageError(f"--offset must not be negative, not {value}")
    return value


def _true(properties: dict[str, str], key: str, default: bool = False) -> bool:
    return properties.get(key, "true" if default else "false").lower() == "true"


class RecordFormatter:
    """Kafka's DefaultMessageFormatter: [CreateTime:ts] [Partition:p] [Offset:o] [headers] [key] value."""

    def __init__(self, properties: dict[str, str], json_output: bool) -> None:
        self.json_output = json_output
        self.print_key = _true(properties, "print.key")
        self.print_value = _true(properties, "print.value", True)
        self.print_timestamp = _true(properties, "print.timestamp")
        self.print_headers = _true(properties, "print.headers")
        self.print_partition = _true(properties, "print.partition")
        self.print_offset = _true(properties, "print.offset")
        self.separator = _unescape(properties.get("key.separator", "\t"))
        self.line_separator = _unescape(properties.get("line.separator", "\n"))
        self.headers_separator = _unescape(properties.get("headers.separator", ","))
        self.headers_key_separator = _unescape(properties.get("headers.key.separator", ":"))
        self.null_literal = properties.get("null.literal", "null")

    def _text(self, value: bytes | None) -> str:
        return self.null_literal if value is None else value.decode("utf-8", "replace")

    def format(self, tp: TopicPartition, record) -> str:
        if self.json_output:
            return json.dumps(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "offset": record.offset,
                    "timestamp": record.timestamp,
                    "key": _json_bytes(record.key),
                    "value": _json_bytes(record.value),
                    "headers": [[k, _json_bytes(v)] for k, v in record.headers],
                }
            ) + "\n"
        fields = []
        if self.print_timestamp:
            fields.append(f"CreateTime:{record.timestamp}")
        if self.print_partition:
            fields.append(f"Partition:{tp.partition}")
        if self.print_offset:
            fields.append(f"Offset:{record.offset}")
        if self.print_headers:
            if record.headers:
                fields.append(self.headers_separator.join(f"{k}{self.headers_key_separator}{self._text(v)}" for k, v in record.headers))
            else:
                fields.append("NO_HEADERS")
        if self.print_key:
            fields.append(self._text(record.key))
        if self.print_value:
            fields.append(self._text(record.value))
        return self.separator.join(fields) + self.line_separator


def _json_bytes(value: bytes | None):
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode("ascii")}


def _unescape(text: str) -> str:
    return text.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")


async def consume(client: KafkaClient, args: argparse.Namespace, start: int, formatter: RecordFormatter) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    isolation = READ_COMMITTED if args.isolation_level == "read_committed" else READ_UNCOMMITTED
    consumer = Consumer(client, isolation_level=isolation, reset="earliest" if args.from_beginning else "latest")
    cluster = await client.topic_metadata([args.topic])
    partitions = cluster.partitions_of(args.topic)
    member = None
    if args.group:
        member = GroupMember(client, args.group, [args.topic])
        await _join(member, consumer, start)
    else:
        if args.partition is not None:
            wanted = TopicPartition(args.topic, args.partition)
            if wanted not in partitions:
                raise UsageError(f"topic '{args.topic}' has no partition {args.partition} (partitions 0..{len(partitions) - 1})")
            partitions = [wanted]
        await consumer.assign({tp: start for tp in partitions})
    count = 0
    idle_deadline = _deadline(loop, args.timeout_ms)
    last_commit = loop.time()
    out = sys.stdout
    try:
        while not stop.is_set():
            if member is not None and member.rebalance_needed:
                await _commit(member, consumer)
                await _join(member, consumer, start)
            poll = asyncio.ensure_future(consumer.poll(POLL_WAIT_MS))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({poll, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not poll.done():
                poll.cancel()
                break
            records = poll.result()
            for tp, record in records:
                out.write(formatter.format(tp, record))
                count += 1
                if args.max_messages is not None and count >= args.max_messages:
                    consumer.positions[tp] = record.offset + 1
                    stop.set()
                    break
            out.flush()
            if records:
                idle_deadline = _deadline(loop, args.timeout_ms)
            elif idle_deadline is not None and loop.time() >= idle_deadline:
                break
            if member is not None and loop.time() - last_commit >= AUTO_COMMIT_INTERVAL_S:
                await _commit(member, consumer)
                last_commit = loop.time()
    finally:
        if member is not None:
            try:
                await _commit(member, consumer)
            finally:
                await member.leave()
        print(f"Processed a total of {count} messages", file=sys.stderr)
    return 0


def _deadline(loop: asyncio.AbstractEventLoop, timeout_ms: int | None) -> float | None:
    return None if timeout_ms is None else loop.time() + timeout_ms / 1000


async def _join(member: GroupMember, consumer: Consumer, start: int) -> None:
    assignment = await member.join()
    committed = await member.committed(assignment) if assignment else {}
    await consumer.assign({tp: committed.get(tp, -1) if committed.get(tp, -1) >= 0 else start for tp in assignment})


async def _commit(member: GroupMember, consumer: Consumer) -> None:
    if member.generation_id < 0 or not consumer.positions:
        return
    try:
        await member.commit(dict(consumer.positions))
    except Exception as e:  # a rebalance in between: the next owner starts from the last commit
        warn(f"could not commit offsets of group '{member.group_id}': {e}")
