"""The log layer's recovery, start-up and compaction costs, measured on this machine.

    python bench/recovery.py [--mib 1024] [--clean-gib 10] [--cleaner-mib 64] [--dir PATH]
                             [--only recovery|startup|cleaner] [--drop-caches]

1. recovery: a child process appends `--mib` MiB to one partition through LogManager and
   PartitionLog (64 KiB batches, 1 GiB segments: Kafka's defaults) and dies with os._exit, which
   leaves the files exactly as kill -9 would (no flush, no checkpoint, no clean-shutdown
   marker); then LogManager.startup is timed: it validates every byte after the recovery point.
2. start-up: a child writes `--clean-gib` GiB over 10 partitions and shuts down cleanly; the
   time of LogManager.startup over that data is reported (it must not grow with the data:
   indexes are only sanity-checked, segments opened lazily).
3. cleaner: `--cleaner-mib` MiB of 100-byte values over 10,000 keys in 8 MiB segments of a
   compacted log, one LogCleaner.clean_once timed: MB/s of log cleaned, records/s.

The page cache is warm (the data was just written) unless --drop-caches works (root only).
Times are for the log layer alone; a broker process adds its own start (see bench/run.py).
Prints numbers; never fails on speed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from odradek.clock import Clock  # noqa: E402
from odradek.log.cleaner import LogCleaner  # noqa: E402
from odradek.log.log_config import LogConfig  # noqa: E402
from odradek.log.manager import LogManager  # noqa: E402
from odradek.protocol.records import encode_batch, validate_batches  # noqa: E402
from odradek.protocol.topic_partition import TopicPartition  # noqa: E402

MIB = 1024 * 1024
BATCH_BYTES = 64 * 1024
BATCHES_PER_APPEND = 16


def template_batches(clock: Clock) -> bytes:
    """BATCHES_PER_APPEND batches of ~64 KiB (64 records of 1 KiB random-ish values)."""
    rng = random.Random(1)
    batches = []
    for _ in range(BATCHES_PER_APPEND):
        records = [(clock.now_ms(), f"key-{rng.randrange(10**6)}".encode(), rng.randbytes(1000)) for _ in range(64)]
        batches.append(encode_batch(records))
    return b"".join(batches)


def fill(log, template: bytes, total_bytes: int) -> int:
    headers = validate_batches(bytearray(template))
    written = 0
    while written < total_bytes:
        buffer = bytearray(template)
        log.append(buffer, headers, 0)
        written += len(buffer)
    return written


def manager_for(directory: Path, clock: Clock) -> LogManager:
    return LogManager([directory], clock, cluster_id="bench-recovery", node_id=0)


def drop_caches(wanted: bool) -> str:
    if not wanted:
        return "warm page cache"
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "cold page cache (dropped)"
    except OSError as exc:
        return f"warm page cache (could not drop caches: {exc.strerror})"


def write_then_die(directory: Path, partitions: int, bytes_per_partition: int, config: LogConfig, clean: bool) -> None:
    """In a child: write, then shut down cleanly or die like kill -9 (os._exit: nothing flushed)."""
    pid = os.fork()
    if pid == 0:
        try:
            clock = Clock()
            manager = manager_for(directory, clock)
            manager.startup(lambda tp: config)
            template = template_batches(clock)
            for partition in range(partitions):
                log = manager.create_log(TopicPartition("bench", partition), config)
                log.flush_on_roll = clean  # unflushed means unflushed: no background fsync at rolls
                fill(log, template, bytes_per_partition)
            if clean:
                manager.shutdown()
        except BaseException:  # noqa: BLE001 - the parent reports the exit status
            import traceback

            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit(f"writer child failed with status {status}")


def time_startup(directory: Path, config: LogConfig) -> tuple[float, int, int]:
    manager = manager_for(directory, Clock())
    started = time.perf_counter()
    logs = manager.startup(lambda tp: config)
    elapsed = time.perf_counter() - started
    total = sum(log.size_bytes for log in logs.values())
    segments = sum(len(log.segments) for log in logs.values())
    manager.shutdown()
    return elapsed, total, segments


def bench_recovery(work: Path, mib: int, drop: bool) -> None:
    directory = work / "recovery"
    config = LogConfig()
    write_then_die(directory, 1, mib * MIB, config, clean=False)
    cache = drop_caches(drop)
    elapsed, total, segments = time_startup(directory, config)
    print(
        f"recovery after kill -9: {total / MIB:,.0f} MiB unflushed in {segments} segment(s) validated in "
        f"{elapsed:.2f} s = {total / MIB / elapsed:,.0f} MiB/s ({cache})"
    )
    shutil.rmtree(directory)


def bench_startup(work: Path, gib: float, drop: bool) -> None:
    directory = work / "startup"
    config = LogConfig()
    partitions = 10
    write_then_die(directory, partitions, int(gib * 1024 * MIB / partitions), config, clean=True)
    cache = drop_caches(drop)
    elapsed, total, segments = time_startup(directory, config)
    print(
        f"start-up after clean shutdown: {total / (1024 * MIB):,.1f} GiB in {partitions} partitions, "
        f"{segments} segments loaded in {elapsed * 1000:,.0f} ms ({cache})"
    )
    shutil.rmtree(directory)


def bench_cleaner(work: Path, mib: int) -> None:
    directory = work / "cleaner"
    clock = Clock()
    config = LogConfig(segment_bytes=8 * MIB, cleanup_policy=("compact",), file_delete_delay_ms=0)
    manager = manager_for(directory, clock)
    manager.startup(lambda tp: config)
    log = manager.create_log(TopicPartition("compacted", 0), config)
    rng = random.Random(2)
    keys = [f"key-{i:05d}".encode() for i in range(10_000)]
    records_written = 0
    while log.size_bytes < mib * MIB:
        batch = encode_batch([(clock.now_ms(), rng.choice(keys), rng.randbytes(100)) for _ in range(100)])
        buffer = bytearray(batch)
        log.append(buffer, validate_batches(buffer), 0)
        records_written += 100
    log.roll()
    before = log.size_bytes
    cleaner = LogCleaner(manager, clock)
    started = time.perf_counter()
    cleaner.clean_once(clock.now_ms())
    elapsed = time.perf_counter() - started
    stats = cleaner.stats
    print(
        f"cleaner: {before / MIB:,.0f} MiB ({records_written:,} records, 10,000 keys) compacted to "
        f"{log.size_bytes / MIB:,.1f} MiB in {elapsed:.2f} s = {before / MIB / elapsed:,.1f} MiB/s, "
        f"{stats.records_read / elapsed:,.0f} records/s recopied ({stats.bytes_read / MIB:,.0f} MiB read for the offset map)"
    )
    manager.shutdown()
    shutil.rmtree(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="unflushed MiB to recover after kill -9 (default 1024)")
    parser.add_argument("--clean-gib", type=float, default=10, help="GiB of cleanly shut down data (default 10)")
    parser.add_argument("--cleaner-mib", type=int, default=64, help="MiB of keyed data to compact (default 64)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--only", choices=["recovery", "startup", "cleaner"], default=None)
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache before timing (root)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="odradek-bench-recovery-", dir=args.dir))
    try:
        if args.only in (None, "recovery"):
            bench_recovery(work, args.mib, args.drop_caches)
        if args.only in (None, "startup"):
            bench_startup(work, args.clean_gib, args.drop_caches)
        if args.only in (None, "cleaner"):
            bench_cleaner(work, args.cleaner_mib)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
