"""A full disk under a running broker: Produce gets KAFKA_STORAGE_ERROR, the broker stays up,
what was written stays readable, and appends work again once space is freed.

Read-only permissions do not stop root, so the log dir is a 2 MB tmpfs that the test fills
with a file of its own; the test skips when it cannot mount one (not root, no tmpfs).
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from .test_bad_input import api_versions, batch, fetch_partition, list_offset, new_topic, produce_partition
from .wire import WireClient

NONE = 0
KAFKA_STORAGE_ERROR = 56
TMPFS_SIZE = "2m"
FILL_CHUNK_BYTES = 64 * 1024
BATCH_VALUE_BYTES = 16 * 1024
MAX_PRODUCES_TO_FILL = 64


@pytest.fixture
def small_disk(tmp_path: Path):
    mountpoint = tmp_path / "small-disk"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a {TMPFS_SIZE} tmpfs at {mountpoint}: {result.stderr.strip() or result.returncode}")
    try:
        yield mountpoint
    finally:
        unmount = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True)
        if unmount.returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(path: Path) -> int:
    """Write zeros to `path` until the file system is full; the bytes written."""
    written = 0
    chunk = b"\0" * FILL_CHUNK_BYTES
    with open(path, "wb", buffering=0) as filler:
        while True:
            try:
                step = filler.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                # Fill the last partial chunk byte-wise in smaller steps.
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 2]
                continue
            written += step


def test_full_disk_answers_storage_error_keeps_data_and_recovers(start_broker, small_disk: Path):
    broker = start_broker(**{"log.dirs": str(small_disk)})
    try:
        with WireClient(broker.bootstrap_servers) as client:
            topic = new_topic(client)
            before = [f"before-{i}".encode() for i in range(3)]
            for i, value in enumerate(before):
                answer = produce_partition(client, topic, 0, batch(value))
                assert (answer.error_code, answer.base_offset) == (NONE, i)

            filler = small_disk / f"filler-{uuid.uuid4().hex[:8]}"
            fill(filler)
            big_value = os.urandom(BATCH_VALUE_BYTES)
            errors = []
            for _ in range(MAX_PRODUCES_TO_FILL):
                answer = produce_partition(client, topic, 0, batch(big_value))
                errors.append(answer.error_code)
                if answer.error_code != NONE:
                    break
            assert errors[-1] == KAFKA_STORAGE_ERROR, f"produce answers on a full disk: {errors}"
            assert answer.base_offset == -1
            appended = len(before) + len(errors) - 1  # batches that got in before the disk filled up

            assert broker.running
            assert api_versions(client).error_code == NONE
            latest = list_offset(client, topic)
            assert (latest.error_code, latest.offset) == (NONE, appended)
            read = fetch_partition(client, topic, 0, offset=0)
            assert (read.error_code, read.high_watermark) == (NONE, appended)
            records = bytes(read.records)
            assert all(value in records for value in before)

            filler.unlink()
            answer = produce_partition(client, topic, 0, batch(b"after"))
            assert (answer.error_code, answer.base_offset) == (NONE, appended)
            read = fetch_partition(client, topic, 0, offset=appended)
            assert read.error_code == NONE and b"after" in bytes(read.records)

        with WireClient(broker.bootstrap_servers) as fresh:
            assert api_versions(fresh).error_code == NONE
        assert "Traceback" not in broker.output()
    finally:
        broker.stop()  # before the tmpfs is unmounted
