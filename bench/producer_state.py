"""How long a partition with a lot of idempotent data takes to be ready for its next idempotent
produce after a restart: with the producer snapshot written at clean shutdown, after kill -9
(snapshot of the last roll plus the active segment's headers), and without any snapshot (what
odradek did before it wrote them: every batch header of the log replayed on first use).

    .venv/bin/python bench/producer_state.py [--gib 1] [--producers 100] [--records-per-batch 100]

Writes the log with PartitionLog itself (no broker), in a temporary directory.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from odradek.clock import Clock
from odradek.log.log_config import LogConfig
from odradek.log.partition_log import PartitionLog
from odradek.log.producer_state import snapshot_offsets, snapshot_path
from odradek.protocol.records import Record, encode_batch, read_batch_header, validate_batches

VALUE = b"v" * 1000


def fill(directory: Path, target_bytes: int, producers: int, per_batch: int) -> tuple[int, int]:
    log = PartitionLog.open(directory, LogConfig(), Clock(), clean_shutdown=True)
    log.flush_on_roll = False
    sequences = {producer: 0 for producer in range(producers)}
    written = batches = 0
    producer = 0
    while written < target_bytes:
        records = [Record(i, 1_700_000_000_000, None, VALUE) for i in range(per_batch)]
        data = bytearray(encode_batch(records, producer_id=1000 + producer, producer_epoch=0, base_sequence=sequences[producer]))
        log.append(data, validate_batches(data), 0)
        sequences[producer] += per_batch
        written += len(data)
        batches += 1
        producer = (producer + 1) % producers
    log.close()
    return written, batches


def time_reopen(directory: Path, *, clean: bool) -> tuple[float, float]:
    """(seconds to open, seconds for the first idempotent check after it)."""
    started = time.perf_counter()
    log = PartitionLog.open(directory, LogConfig(), Clock(), clean_shutdown=clean, recovery_point=1 << 62)
    opened = time.perf_counter()
    header = read_batch_header(encode_batch([Record(0, 1, None, b"x")], producer_id=1000, producer_epoch=0, base_sequence=0))
    try:
        log.producer_state.check(header)
    except Exception:  # noqa: BLE001 - the answer does not matter, the time does
        pass
    checked = time.perf_counter()
    log.close()
    return opened - started, checked - opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--producers", type=int, default=100)
    parser.add_argument("--records-per-batch", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="odradek-producer-state-"))
    directory = work / "t-0"
    try:
        started = time.perf_counter()
        written, batches = fill(directory, int(args.gib * (1 << 30)), args.producers, args.records_per_batch)
        print(f"wrote {written / (1 << 20):.0f} MiB in {batches} idempotent batches from {args.producers} producers "
              f"in {time.perf_counter() - started:.1f} s; snapshots at {snapshot_offsets(directory)[-3:]} ...")
        opened, checked = time_reopen(directory, clean=True)
        print(f"after a clean shutdown (snapshot at the log end): open {opened * 1000:.0f} ms, first idempotent check {checked * 1000:.2f} ms")
        latest = snapshot_offsets(directory)[-1]
        snapshot_path(directory, latest).unlink()  # as after kill -9: only the roll snapshots remain
        opened, checked = time_reopen(directory, clean=False)
        print(f"after kill -9 (the last roll's snapshot and the active segment replayed): open {opened * 1000:.0f} ms, "
              f"first check {checked * 1000:.2f} ms")
        for offset in snapshot_offsets(directory):
            snapshot_path(directory, offset).unlink()
        opened, checked = time_reopen(directory, clean=True)
        print(f"without any snapshot (the whole log's headers replayed, as before snapshots existed): open {opened * 1000:.0f} ms, "
              f"first check {checked * 1000:.2f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
