"""`odradek dump-log FILE...`: print the batches, records and index entries of segment files.

The one command that reads broker files directly (kafka-dump-log does the same): `.log` segments
(every batch header with its CRC check, records with --print-data-log / --deep-iteration),
`.index` (offset -> position) and `.timeindex` (timestamp -> offset), with --index-sanity-check
comparing an index against its segment. Uses odradek.protocol only; files are mapped, not read
into memory. Exit code 1 when something is invalid (a CRC mismatch, a torn batch, an index that
does not match its segment), 0 otherwise.
"""

from __future__ import annotations

import argparse
import mmap
import struct
import sys
from pathlib import Path

from odradek.cli import UsageError
from odradek.cli.client_options import add_subcommand
from odradek.cli.output import print_json
from odradek.protocol.compression import CODEC_NAMES
from odradek.protocol.errors import KafkaError
from odradek.protocol.records import (
    BATCH_HEADER_SIZE,
    check_batch,
    decode_records,
    read_batch_header,
    read_batch_size,
)

__all__ = ["register", "run"]

EXAMPLES = """
  odradek dump-log odradek-data/kaninitopic-0/00000000000000000000.log
  odradek dump-log --print-data-log odradek-data/kaninitopic-0/00000000000000000000.log
  odradek dump-log --index-sanity-check odradek-data/kaninitopic-0/00000000000000000000.index
  odradek dump-log --files a.log,a.index,a.timeindex --output json
"""

OFFSET_INDEX_ENTRY = struct.Struct(">ii")
TIME_INDEX_ENTRY = struct.Struct(">qi")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(
        subparsers,
        "dump-log",
        help="print the contents of segment and index files",
        description="Print batches and records of .log segments and the entries of .index/.timeindex files "
        "(kafka-dump-log). Reads the files directly; no broker needed.",
        examples=EXAMPLES,
    )
    parser.add_argument("paths", nargs="*", metavar="FILE", help=".log, .index or .timeindex file")
    parser.add_argument("--files", action="append", default=[], metavar="F1,F2", help="files, comma-separated (Kafka's spelling)")
    parser.add_argument("--print-data-log", action="store_true", help="print every record with its key and value (implies --deep-iteration)")
    parser.add_argument("--deep-iteration", action="store_true", help="print every record's metadata")
    parser.add_argument("--index-sanity-check", action="store_true", help="check index entries against the segment, print only the verdict")
    parser.add_argument("--verify-index-only", action="store_true", help="check index entries against the segment, print only mismatches")
    parser.add_argument("--max-batches", type=int, metavar="N", help="stop after N batches per segment")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="Kafka's text layout (default) or JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    paths = list(args.paths) + [p for item in args.files for p in item.split(",") if p.strip()]
    if not paths:
        raise UsageError("dump-log needs at least one file (FILE... or --files)")
    ok = True
    documents = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"no such file: {name}")
        if path.suffix == ".log":
            document = dump_segment(path, args)
        elif path.suffix == ".index":
            document = dump_offset_index(path, args)
        elif path.suffix == ".timeindex":
            document = dump_time_index(path, args)
        else:
            raise UsageError(f"{name}: not a .log, .index or .timeindex file")
        ok = ok and document["valid"]
        documents.append(document)
    if args.output == "json":
        print_json(documents)
    sys.stdout.flush()
    return 0 if ok else 1


def _say(args: argparse.Namespace, line: str) -> None:
    if args.output != "json":
        print(line)


class _Mapped:
    """A read-only map of a file (an empty file maps to b"")."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "rb")
        size = path.stat().st_size
        self.data = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    def __enter__(self):
        return self.data

    def __exit__(self, *exc_info) -> None:
        if isinstance(self.data, mmap.mmap):
            self.data.close()
        self.file.close()


def _base_offset(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        raise UsageError(f"{path}: the file name is not a 20-digit base offset") from None


def _bool(value: bool) -> str:
    return "true" if value else "false"


def scan_batches(data) -> tuple[list, int | None, str | None]:
    """(headers of the whole batches, position of the first invalid byte or None, why)."""
    headers = []
    position = 0
    total = len(data)
    while position < total:
        size = read_batch_size(data, position)
        if size is None or total - position < BATCH_HEADER_SIZE:
            return headers, position, f"{total - position} trailing bytes are too few for a batch header"
        header = read_batch_header(data, position)
        problem = check_batch(data, header, total - position)
        if problem is not None and problem != "CRC32C mismatch":
            return headers, position, problem
        headers.append(header)
        position += size
    return headers, None, None


def dump_segment(path: Path, args: argparse.Namespace) -> dict:
    deep = args.print_data_log or args.deep_iteration
    document: dict = {"file": str(path), "type": "log", "base_offset": _base_offset(path), "batches": [], "valid": True}
    _say(args, f"Dumping {path}")
    _say(args, f"Log starting offset: {document['base_offset']}")
    with _Mapped(path) as data:
        headers, bad_position, why = scan_batches(data)
        for count, header in enumerate(headers):
            if args.max_batches is not None and count >= args.max_batches:
                break
            valid = check_batch(data, header, len(data) - header.position) is None
            document["valid"] = document["valid"] and valid
            timestamp_type = "LogAppendTime" if header.is_log_append_time else "CreateTime"
            batch = {
                "base_offset": header.base_offset,
                "last_offset": header.last_offset,
                "count": header.record_count,
                "base_sequence": header.base_sequence,
                "last_sequence": header.last_sequence,
                "producer_id": header.producer_id,
                "producer_epoch": header.producer_epoch,
                "partition_leader_epoch": header.partition_leader_epoch,
                "is_transactional": header.is_transactional,
                "is_control": header.is_control,
                "position": header.position,
                "timestamp_type": timestamp_type,
                "max_timestamp": header.max_timestamp,
                "size": header.size,
                "magic": header.magic,
                "compression": CODEC_NAMES.get(header.compression, str(header.compression)),
                "crc": header.crc,
                "is_valid": valid,
            }
            _say(
                args,
                f"baseOffset: {header.base_offset} lastOffset: {header.last_offset} count: {header.record_count} "
                f"baseSequence: {header.base_sequence} lastSequence: {header.last_sequence} producerId: {header.producer_id} "
                f"producerEpoch: {header.producer_epoch} partitionLeaderEpoch: {header.partition_leader_epoch} "
                f"isTransactional: {_bool(header.is_transactional)} isControl: {_bool(header.is_control)} "
                f"position: {header.position} {timestamp_type}: {header.max_timestamp} size: {header.size} magic: {header.magic} "
                f"compresscodec: {batch['compression']} crc: {header.crc} isvalid: {_bool(valid)}",
            )
            if deep and valid:
                batch["records"] = _dump_records(data, header, args)
            document["batches"].append(batch)
        if bad_position is not None:
            document["valid"] = False
            document["invalid_at"] = {"position": bad_position, "reason": why, "bytes": len(data) - bad_position}
            _say(args, f"Found {len(data) - bad_position} invalid bytes at position {bad_position} in {path}: {why}")
    return document


def _dump_records(data, header, args: argparse.Namespace) -> list[dict]:
    try:
        records = decode_records(data, header)
    except KafkaError as e:
        _say(args, f"| records do not decode: {e}")
        return []
    out = []
    timestamp_type = "LogAppendTime" if header.is_log_append_time else "CreateTime"
    for index, record in enumerate(records):
        sequence = header.base_sequence + index if header.base_sequence >= 0 else -1
        entry = {
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key_size": -1 if record.key is None else len(record.key),
            "value_size": -1 if record.value is None else len(record.value),
            "sequence": sequence,
            "header_keys": [k for k, _v in record.headers],
        }
        line = (
            f"| offset: {record.offset} {timestamp_type}: {record.timestamp} keySize: {entry['key_size']} "
            f"valueSize: {entry['value_size']} sequence: {sequence} headerKeys: [{','.join(entry['header_keys'])}]"
        )
        if args.print_data_log:
            entry["key"] = None if record.key is None else record.key.decode("utf-8", "replace")
            entry["payload"] = None if record.value is None else record.value.decode("utf-8", "replace")
            if record.key is not None:
                line += f" key: {entry['key']}"
            line += f" payload: {entry['payload'] if entry['payload'] is not None else 'null'}"
        _say(args, line)
        out.append(entry)
    return out


def _read_entries(data, entry: struct.Struct) -> list[tuple]:
    """Entries up to the first all-zero one after the first (Kafka preallocates index files with zeros)."""
    entries = []
    for position in range(0, len(data) - len(data) % entry.size, entry.size):
        values = entry.unpack_from(data, position)
        if position and not any(values):
            break
        if position == 0 and not any(values) and len(data) >= 2 * entry.size and not any(entry.unpack_from(data, entry.size)):
            # A fresh, preallocated index: the first entry is unused too, unless the segment says otherwise.
            entries.append(values)
            break
        entries.append(values)
    return entries


def _segment_batches(index_path: Path) -> list | None:
    log_path = index_path.with_suffix(".log")
    if not log_path.is_file():
        return None
    with _Mapped(log_path) as data:
        headers, _bad, _why = scan_batches(data)
    return headers


def _load_index(path: Path, entry: struct.Struct, kind: str) -> tuple[dict, list[tuple], list | None]:
    """The dump document, the index's entries and the segment's batches (None without a `.log`)."""
    document: dict = {"file": str(path), "type": kind, "entries": [], "problems": [], "valid": True}
    with _Mapped(path) as data:
        if len(data) % entry.size:
            document["problems"].append(f"size {len(data)} is not a multiple of {entry.size}")
        raw = _read_entries(data, entry)
    batches = _segment_batches(path)
    if raw and raw[0] == (0, 0) and batches is not None and not batches:
        raw = []  # preallocated and unused: the segment is empty
    return document, raw, batches


def _report_index(path: Path, args: argparse.Namespace, document: dict, describe_entry) -> dict:
    """Print an index dump as kafka-dump-log does: entries, mismatches, the sanity verdict."""
    check = args.index_sanity_check or args.verify_index_only
    document["valid"] = not document["problems"]
    _say(args, f"Dumping {path}")
    if not check:
        for entry in document["entries"]:
            _say(args, describe_entry(entry))
    if check or document["problems"]:
        for problem in document["problems"]:
            _say(args, f"Mismatch in {path}: {problem}")
    if args.index_sanity_check:
        _say(args, f"{path} passed sanity check." if document["valid"] else f"{path} failed sanity check.")
    return document


def dump_offset_index(path: Path, args: argparse.Namespace) -> dict:
    base_offset = _base_offset(path)
    document, raw, batches = _load_index(path, OFFSET_INDEX_ENTRY, "offset_index")
    by_position = {b.position: b for b in batches} if batches is not None else None
    previous = None
    for relative, position in raw:
        offset = base_offset + relative
        document["entries"].append({"offset": offset, "position": position})
        if previous is not None and (offset <= previous[0] or position <= previous[1]):
            document["problems"].append(f"entry offset {offset} position {position} does not increase over offset {previous[0]} position {previous[1]}")
        if by_position is not None:
            batch = by_position.get(position)
            if batch is None:
                document["problems"].append(f"entry offset {offset} points at position {position}, where no batch starts in the segment")
            elif not batch.base_offset <= offset <= batch.last_offset:
                document["problems"].append(
                    f"entry offset {offset} points at the batch of offsets {batch.base_offset}..{batch.last_offset} (position {position})"
                )
        previous = (offset, position)
    return _report_index(path, args, document, lambda e: f"offset: {e['offset']} position: {e['position']}")


def dump_time_index(path: Path, args: argparse.Namespace) -> dict:
    base_offset = _base_offset(path)
    document, raw, batches = _load_index(path, TIME_INDEX_ENTRY, "time_index")
    last_offset = batches[-1].last_offset if batches else None
    previous = None
    for timestamp, relative in raw:
        offset = base_offset + relative
        document["entries"].append({"timestamp": timestamp, "offset": offset})
        if previous is not None and (timestamp < previous[0] or offset < previous[1]):
            document["problems"].append(f"entry timestamp {timestamp} offset {offset} goes back from timestamp {previous[0]} offset {previous[1]}")
        if last_offset is not None and offset > last_offset:
            document["problems"].append(f"entry offset {offset} is past the segment's last offset {last_offset}")
        previous = (timestamp, offset)
    return _report_index(path, args, document, lambda e: f"timestamp: {e['timestamp']} offset: {e['offset']}")


