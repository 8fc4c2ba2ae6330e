"""The log cleaner's throughput: odradek's LogCleaner beside Apache Kafka's, on the same segment files.

    .venv/bin/python bench/cleaner.py [--mib 256] [--keys 10000] [--value-bytes 100]
                                      [--batch-records 128] [--segment-mib 16] [--codec none lz4]
                                      [--runs 3] [--only odradek|kafka] [--dir PATH]

1. For each codec, one compacted log is written once through odradek's LogManager and
   PartitionLog into a template directory: `--mib` MiB of batches of `--batch-records` records
   (about 16 KiB, the Java producer's default batch.size), each a random key of `--keys` and a
   JSON-like value of `--value-bytes` bytes (compressible, as real payloads are), in
   `--segment-mib` MiB segments, then rolled so that every byte is cleanable. LZ4 batches are
   framed with independent blocks, as Kafka's Java reader requires (see kafka_readable_lz4).
2. odradek: the template is copied, the copy opened with LogManager (clean shutdown: no recovery),
   and one LogCleaner.clean_once timed. MiB/s = dirty log bytes / seconds (the offset map and
   the recopy together). Best of `--runs`.
3. Apache Kafka (the jars bench/kafka_dist.py caches, a KRaft single node as bench/brokers.py
   starts it): the topic is created compacted with the same segment.bytes, the broker stopped,
   the partition's segment files replaced by the template's (`.log`, `.index`, `.timeindex`:
   the on-disk format is Kafka's), and the broker started again with log.cleaner.backoff.ms=100.
   Kafka's cleaner logs its own summary ("Log cleaner thread 0 cleaned log ... MB of log
   processed in ... seconds (... MB/sec)"): that figure is reported, the bytes being the same
   dirty section. One JVM per run, so each run includes the JIT's warm-up, as a cleaner pass on
   a broker that has just started would.

The page cache is warm for both (the files were just written or copied). Prints numbers; never
fails on speed.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import cramjam
from crc32c import crc32c

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from odradek.clock import Clock  # noqa: E402
from odradek.log.cleaner import LogCleaner  # noqa: E402
from odradek.log.log_config import LogConfig  # noqa: E402
from odradek.log.manager import LogManager  # noqa: E402
from odradek.protocol.compression import CODEC_NAMES, LZ4  # noqa: E402
from odradek.protocol.records import (  # noqa: E402
    ATTRIBUTES_OFFSET,
    BATCH_HEADER_SIZE,
    CRC_OFFSET,
    LOG_OVERHEAD,
    encode_batch,
    validate_batches,
)
from odradek.protocol.topic_partition import TopicPartition  # noqa: E402

MIB = 1024 * 1024
TOPIC = "compacted"
TP = TopicPartition(TOPIC, 0)
CODECS = {name: codec for codec, name in CODEC_NAMES.items()}
KAFKA_SUMMARY = re.compile(
    r"cleaned log (?P<log>\S+) \(dirty section = \[(?P<start>\d+), (?P<end>\d+)\]\)\s*"
    r"(?P<mb>[\d,.]+) MB of log processed in (?P<seconds>[\d,.]+) seconds \((?P<rate>[\d,.]+) MB/sec\)"
    r"(?:.*?Start size: [\d,.]+ MB \((?P<read>[\d,]+) messages\)\s*End size: [\d,.]+ MB \((?P<written>[\d,]+) messages\))?",
    re.S,
)


def log_config(segment_mib: int) -> LogConfig:
    return LogConfig(segment_bytes=segment_mib * MIB, cleanup_policy=("compact",), file_delete_delay_ms=0)


def manager_for(directory: Path, clock: Clock) -> LogManager:
    return LogManager([directory], clock, cluster_id="bench-cleaner", node_id=0)


def build_template(directory: Path, args, codec: int) -> dict:
    """Write the dirty log once; returns what was written."""
    clock = Clock()
    config = log_config(args.segment_mib)
    manager = manager_for(directory, clock)
    manager.startup(lambda tp: config)
    log = manager.create_log(TP, config)
    rng = random.Random(7)
    keys = [f"key-{i:05d}" for i in range(args.keys)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    records_written = 0
    started = time.perf_counter()
    while log.size_bytes < args.mib * MIB:
        now = clock.now_ms()
        batch = []
        for _ in range(args.batch_records):
            key = rng.choice(keys)
            value = f'{{"key":"{key}","seq":{records_written:010d},"score":{rng.random():.6f},"note":"'
            value += "".join(rng.choices(letters, k=8)) * 8
            batch.append((now, key.encode(), (value[: args.value_bytes - 2] + '"}').encode()))
            records_written += 1
        if codec == LZ4:
            buffer = kafka_readable_lz4(encode_batch(batch))
        else:
            buffer = bytearray(encode_batch(batch, codec=codec))
        log.append(buffer, validate_batches(buffer), 0)
    log.roll()
    written = {"bytes": log.size_bytes, "records": records_written, "segments": len(log.segments) - 1,
               "log_end_offset": log.log_end_offset, "seconds": time.perf_counter() - started}
    manager.shutdown()
    return written


def kafka_readable_lz4(batch: bytes) -> bytearray:
    """`batch` (uncompressed) with its records in an LZ4 frame of independent blocks.

    odradek's codec (cramjam.lz4.compress) writes linked blocks, which Kafka's Java reader
    (KafkaLZ4BlockInputStream) refuses ("Dependent block stream is unsupported"); the template
    must be readable by both cleaners."""
    compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    compressor.compress(batch[BATCH_HEADER_SIZE:])
    out = bytearray(batch[:BATCH_HEADER_SIZE]) + bytes(compressor.finish())
    struct.pack_into(">i", out, 8, len(out) - LOG_OVERHEAD)
    struct.pack_into(">h", out, ATTRIBUTES_OFFSET, struct.unpack_from(">h", out, ATTRIBUTES_OFFSET)[0] | LZ4)
    struct.pack_into(">I", out, CRC_OFFSET, crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return out


def partition_dir(log_dir: Path) -> Path:
    return log_dir / f"{TOPIC}-0"


def run_odradek(template: Path, work: Path, args) -> dict:
    directory = work / "odradek-run"
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(template, directory)
    clock = Clock()
    config = log_config(args.segment_mib)
    manager = manager_for(directory, clock)
    manager.startup(lambda tp: config)
    log = manager.get_log(TP)
    before = log.size_bytes
    cleaner = LogCleaner(manager, clock)
    started = time.perf_counter()
    cleaner.clean_once(clock.now_ms())
    elapsed = time.perf_counter() - started
    stats = cleaner.stats
    result = {
        "seconds": elapsed, "dirty_bytes": before, "after_bytes": log.size_bytes,
        "records_read": stats.records_read, "records_removed": stats.records_removed,
    }
    manager.shutdown()
    shutil.rmtree(directory, ignore_errors=True)
    return result


# --- Apache Kafka -----------------------------------------------------------------------------


def run_kafka(template: Path, work: Path, args, libs: Path, version: str) -> dict:
    import brokers
    from confluent_kafka.admin import AdminClient, NewTopic

    workdir = Path(tempfile.mkdtemp(prefix="kafka-", dir=work))
    broker = brokers.KafkaBroker(workdir, libs, version)
    broker.extra_config.update({"log.cleaner.backoff.ms": "100", "auto.create.topics.enable": "true"})
    try:
        broker.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = NewTopic(TOPIC, 1, 1, config={
            "cleanup.policy": "compact", "segment.bytes": str(args.segment_mib * MIB),
        })
        admin.create_topics([topic], request_timeout=60)[TOPIC].result(60)
        target = partition_dir(broker.data)
        deadline = time.monotonic() + 60
        while not target.is_dir():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka created no {target}")
            time.sleep(0.05)
        broker.stop()
        for path in target.iterdir():
            if path.suffix in (".log", ".index", ".timeindex", ".snapshot"):
                path.unlink()
        for path in partition_dir(template).iterdir():
            if path.suffix == ".log" or (
                path.suffix in (".index", ".timeindex") and path.with_suffix(".log").stat().st_size > 0
            ):  # the empty active segment's indexes are left to Kafka, which sizes them itself
                shutil.copyfile(path, target / path.name)
        (broker.data / "cleaner-offset-checkpoint").unlink(missing_ok=True)
        log_path = broker.log_path()
        seen = len(log_path.read_text(errors="replace")) if log_path.exists() else 0
        broker.prepare = lambda: None  # restart on the same data, port and config
        broker.start()
        deadline = time.monotonic() + args.kafka_timeout
        while True:
            text = log_path.read_text(errors="replace")[seen:]
            match = KAFKA_SUMMARY.search(text)
            if match is not None and match.group("log").startswith(f"{TOPIC}-0") and (
                match.group("read") is not None or time.monotonic() > deadline
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka's cleaner logged no summary for {TOPIC}-0 in {args.kafka_timeout} s; "
                                   f"see {log_path}:\n{broker.log_tail()}")
            if not broker.alive():
                raise RuntimeError(f"Kafka exited; see {log_path}:\n{broker.log_tail()}")
            time.sleep(0.2)
        number = lambda name: float(match.group(name).replace(",", ""))  # noqa: E731
        read = int(match.group("read").replace(",", "")) if match.group("read") else 0
        written = int(match.group("written").replace(",", "")) if match.group("written") else 0
        return {  # Kafka prints seconds to 0.1 s; its MB/sec comes from the exact time
            "seconds": number("mb") / number("rate"), "dirty_bytes": number("mb") * MIB, "kafka_rate": number("rate"),
            "records_read": read, "records_removed": read - written,
            "dirty_section": (int(match.group("start")), int(match.group("end"))),
        }
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


# --- report -----------------------------------------------------------------------------------


def describe(result: dict) -> str:
    rate = result["dirty_bytes"] / MIB / result["seconds"]
    kept = result["records_read"] - result["records_removed"]
    text = (f"{result['dirty_bytes'] / MIB:,.1f} MiB in {result['seconds']:.2f} s = {rate:,.1f} MiB/s; "
            f"{result['records_read']:,} records read, {kept:,} kept, {result['records_removed']:,} removed")
    if "kafka_rate" in result:
        text += f" (Kafka's own figure: {result['kafka_rate']:,.1f} MB/sec)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256, help="MiB of dirty log (default 256)")
    parser.add_argument("--keys", type=int, default=10_000, help="distinct keys (default 10,000)")
    parser.add_argument("--value-bytes", type=int, default=100, help="bytes per value (default 100)")
    parser.add_argument("--batch-records", type=int, default=128, help="records per batch (default 128)")
    parser.add_argument("--segment-mib", type=int, default=16, help="segment.bytes in MiB (default 16)")
    parser.add_argument("--codec", nargs="+", choices=sorted(CODECS), default=["none", "lz4"])
    parser.add_argument("--runs", type=int, default=3, help="cleaner runs per codec and broker; best reported")
    parser.add_argument("--only", choices=["odradek", "kafka"], default=None)
    parser.add_argument("--kafka-version", default=None, help="default: the newest 4.x (bench/kafka_dist.py)")
    parser.add_argument("--kafka-timeout", type=float, default=600, help="seconds to wait for Kafka's cleaner")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (templates, Kafka's logs)")
    args = parser.parse_args()
    libs = version = None
    if args.only != "odradek":
        import kafka_dist

        version = args.kafka_version or kafka_dist.newest_4x()
        libs = kafka_dist.ensure_kafka(version)
    work = Path(tempfile.mkdtemp(prefix="odradek-bench-cleaner-", dir=args.dir))
    try:
        for codec_name in args.codec:
            template = work / f"template-{codec_name}"
            written = build_template(template, args, CODECS[codec_name])
            print(
                f"{codec_name}: {written['bytes'] / MIB:,.1f} MiB dirty log, {written['records']:,} records of "
                f"{args.value_bytes} B over {args.keys:,} keys, {args.batch_records} per batch, "
                f"{written['segments']} segments of {args.segment_mib} MiB (written in {written['seconds']:.1f} s)",
                flush=True,
            )
            brokers = [("odradek", lambda: run_odradek(template, work, args))]
            if args.only != "odradek":
                brokers.append((f"Apache Kafka {version}", lambda: run_kafka(template, work, args, libs, version)))
            if args.only == "kafka":
                brokers = brokers[1:]
            for name, run in brokers:
                results = []
                for attempt in range(args.runs):
                    result = run()
                    results.append(result)
                    print(f"  {name} run {attempt + 1}: {describe(result)}", flush=True)
                best = min(results, key=lambda r: r["seconds"] / max(r["dirty_bytes"], 1))
                print(f"  {name} best: {describe(best)}", flush=True)
            if not args.keep:
                shutil.rmtree(template, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
