"""`odradek produce`: one record per input line (kafka-console-producer, with batching).

Lines come from stdin or `--file`; with `parse.key=true` each line is `key<key.separator>value`.
Records are batched per partition (up to --batch-size bytes) and several requests are in flight,
so a large file is not one request per line. A progress line is drawn on stderr only when stderr
is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import BinaryIO

from odradek.cli import UsageError
from odradek.cli.client_options import add_client_arguments, add_subcommand, parse_key_values, run_with_client, warn
from odradek.cli.output import print_json
from odradek.client import KafkaClient, Producer
from odradek.client.producer import CODECS_BY_NAME, DEFAULT_BATCH_SIZE_BYTES

__all__ = ["register", "run"]

EXAMPLES = """
  echo hello | odradek produce --topic kaninitopic
  odradek produce --topic kaninitopic --file events.txt --compression zstd
  printf 'user1:clicked\\nuser2:bought\\n' | odradek produce --topic kaninitopic \\
      --property parse.key=true --property key.separator=:
  odradek produce --topic kaninitopic --header source=cli --header trace=42 --acks 1
"""

KNOWN_PROPERTIES = {"parse.key", "key.separator", "ignore.error", "null.marker"}
ACKS = {"all": -1, "-1": -1, "0": 0, "1": 1}
PROGRESS_INTERVAL_S = 0.25


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "produce",
        help="send lines from stdin or a file as records",
        description="Send each input line as one record (kafka-console-producer). Lines are batched per partition.",
        examples=EXAMPLES,
    )
    parser.add_argument("--topic", required=True, help="topic to write to (must exist)")
    parser.add_argument("--file", metavar="PATH", help="read lines from this file instead of stdin")
    parser.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="parse.key=true, key.separator=<sep> (default TAB), null.marker=<text> (repeatable)",
    )
    parser.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="header added to every record (repeatable)")
    parser.add_argument("--partition", type=int, metavar="N", help="write every record to this partition (default: by key, or sticky round robin)")
    parser.add_argument("--acks", "--request-required-acks", dest="acks", default="all", choices=sorted(ACKS), help="acknowledgement: all/-1 (default), 1 or 0")
    parser.add_argument(
        "--compression", "--compression-codec", dest="compression", default="none", choices=list(CODECS_BY_NAME), help="batch compression (default: none)"
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE_BYTES, metavar="BYTES", help=f"records per partition batch, in bytes (default: {DEFAULT_BATCH_SIZE_BYTES})")
    add_client_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    properties = parse_key_values(args.property, "--property")
    for key in sorted(set(properties) - KNOWN_PROPERTIES):
        warn(f"ignoring unknown --property '{key}'")
    headers = []
    for item in args.header:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"malformed --header '{item}': expected key=value")
        headers.append((key, value.encode("utf-8")))
    if args.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, not {args.batch_size}")
    if args.file is not None:
        try:
            source: BinaryIO = open(args.file, "rb")
        except OSError as e:
            raise UsageError(f"cannot read --file '{args.file}': {e.strerror or e}") from None
    else:
        source = sys.stdin.buffer
    try:
        return run_with_client(args, lambda client: produce(client, args, properties, headers, source))
    finally:
        if source is not sys.stdin.buffer:
            source.close()


READ_CHUNK_BYTES = 1 << 20


async def read_lines(source: BinaryIO):
    """Yield (complete lines, caught_up) per chunk read; caught_up: the read returned less than asked.

    Reads happen in a worker thread so that a slow pipe or a terminal never blocks the loop.
    """
    loop = asyncio.get_running_loop()
    fd = source.fileno()
    leftover = b""
    while True:
        chunk = await loop.run_in_executor(None, os.read, fd, READ_CHUNK_BYTES)
        if not chunk:
            if leftover:
                yield [leftover], True
            return
        lines = (leftover + chunk).split(b"\n")
        leftover = lines.pop()
        yield lines, len(chunk) < READ_CHUNK_BYTES


class Progress:
    """`produced N records (x MB of y MB, z%)` on stderr, redrawn in place; only for a terminal."""

    def __init__(self, source: BinaryIO) -> None:
        self.enabled = sys.stderr.isatty()
        self.total_bytes = None
        try:
            self.total_bytes = os.fstat(source.fileno()).st_size or None
        except (OSError, ValueError, AttributeError):
            pass
        self.last_draw = 0.0
        self.drawn = False

    def update(self, records: int, bytes_read: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last_draw < PROGRESS_INTERVAL_S:
            return
        self.last_draw = now
        line = f"produced {records} records, {bytes_read / 1e6:.1f} MB"
        if self.total_bytes:
            line += f" of {self.total_bytes / 1e6:.1f} MB ({100 * bytes_read / self.total_bytes:.0f}%)"
        sys.stderr.write("\r" + line + "\033[K")
        sys.stderr.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


async def produce(client: KafkaClient, args: argparse.Namespace, properties: dict[str, str], headers: list, source: BinaryIO) -> int:
    parse_key = properties.get("parse.key", "false").lower() == "true"
    separator = properties.get("key.separator", "\t").encode("utf-8")
    null_marker = properties["null.marker"].encode("utf-8") if "null.marker" in properties else None
    producer = Producer(client, acks=ACKS[args.acks], compression=args.compression, batch_size_bytes=args.batch_size)
    await producer.partition_count(args.topic)  # unknown topic: fail before reading input
    progress = Progress(source)
    count = 0
    bytes_read = 0
    try:
        async for lines, caught_up in read_lines(source):
            for line in lines:
                if line.endswith(b"\r"):
                    line = line[:-1]
                key = None
                value: bytes | None = line
                if parse_key:
                    key, sep, value = line.partition(separator)
                    if not sep:
                        raise UsageError(f"line {count + 1} has no key separator {separator.decode()!r} (parse.key=true)")
                    if null_marker is not None and key == null_marker:
                        key = None
                if null_marker is not None and value == null_marker:
                    value = None
                await producer.send(args.topic, value, key, headers, partition=args.partition)
                count += 1
                bytes_read += len(line) + 1
            if caught_up:
                # The input is waiting for more (a terminal, a pipe): send what we have now.
                await producer.send_open_batches()
            progress.update(count, bytes_read)
        await producer.flush()
    finally:
        progress.finish()
    per_partition: dict[int, int] = {}
    for result in producer.results:
        per_partition[result.partition.partition] = per_partition.get(result.partition.partition, 0) + result.record_count
    if args.output == "json":
        print_json({"topic": args.topic, "records": count, "partitions": {str(p): n for p, n in sorted(per_partition.items())}})
    else:
        print(f"Produced {count} records to topic {args.topic}.", file=sys.stderr)
    return 0
