"""Checkpoint files written by two worker threads at once (retention and the cleaner both write
the recovery points): every write succeeds and the file always holds one whole checkpoint."""

import threading

from odradek.log.checkpoint import OffsetCheckpointFile
from odradek.protocol.topic_partition import TopicPartition


def test_two_threads_writing_one_checkpoint_never_fail(tmp_path):
    checkpoint = OffsetCheckpointFile(tmp_path / "recovery-point-offset-checkpoint")
    failures = []

    def write(offset):
        try:
            for _ in range(200):
                checkpoint.write({TopicPartition("t", 0): offset, TopicPartition("t", 1): offset})
        except OSError as failure:
            failures.append(failure)

    threads = [threading.Thread(target=write, args=(offset,)) for offset in (7, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert checkpoint.read() in ({TopicPartition("t", 0): 7, TopicPartition("t", 1): 7},
                                 {TopicPartition("t", 0): 9, TopicPartition("t", 1): 9})
    assert [path.name for path in tmp_path.iterdir()] == ["recovery-point-offset-checkpoint"]
