"""Random appends, rolls, truncations and reopens (clean, unclean, torn tail) against a list model."""

import os
import shutil

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from odradek.clock import FakeClock
from odradek.log.log_config import LogConfig
from odradek.log.partition_log import PartitionLog
from odradek.protocol.records import decode_records, encode_batch, read_batch_header, validate_batches

import tempfile
from pathlib import Path


class PartitionLogModel(RuleBasedStateMachine):
    """The model is the list of (offset, value) records a consumer would read back."""

    @initialize(
        segment_bytes=st.integers(200, 3000),
        index_interval_bytes=st.integers(1, 500),
        codec=st.sampled_from([0, 1, 4]),
    )
    def start(self, segment_bytes, index_interval_bytes, codec):
        self.root = Path(tempfile.mkdtemp())
        self.clock = FakeClock()
        self.config = LogConfig(segment_bytes=segment_bytes, index_interval_bytes=index_interval_bytes)
        self.codec = codec
        self.log = PartitionLog.open(self.root / "model-0", self.config, self.clock)
        self.model: list[tuple[int, bytes]] = []
        self.batch_sizes: list[tuple[int, int]] = []  # (record count, bytes) of each batch in order

    def teardown(self):
        if hasattr(self, "log"):
            self.log.close()
            shutil.rmtree(self.root, ignore_errors=True)

    @rule(batches=st.lists(st.lists(st.binary(max_size=120), min_size=1, max_size=5), min_size=1, max_size=3))
    def append(self, batches):
        self.clock.advance(7)
        encoded = [encode_batch([(self.clock.now_ms(), None, v) for v in values], codec=self.codec) for values in batches]
        buffer = bytearray(b"".join(encoded))
        result = self.log.append(buffer, validate_batches(buffer), 1)
        assert result.base_offset == len(self.model)
        for values, batch in zip(batches, encoded):
            self.batch_sizes.append((len(values), len(batch)))
            for value in values:
                self.model.append((len(self.model), value))

    @rule(clean=st.booleans())
    def reopen(self, clean):
        if clean:
            self.log.close()
        else:
            for segment in self.log.segments:
                segment.close()
        self.log = PartitionLog.open(self.root / "model-0", self.config, self.clock, clean_shutdown=clean)

    @rule(data=st.data())
    def crash_with_torn_tail(self, data):
        if not self.batch_sizes or self.log.active_segment.size == 0:
            return
        count, size = self.batch_sizes[-1]
        cut = data.draw(st.integers(1, size - 1), label="bytes cut from the last batch")
        path = self.log.active_segment.log_path
        for segment in self.log.segments:
            segment.close()
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - cut)
        self.log = PartitionLog.open(
            self.root / "model-0", self.config, self.clock, recovery_point=self.log.recovery_point, clean_shutdown=False
        )
        self.batch_sizes.pop()
        del self.model[len(self.model) - count :]

    @rule(data=st.data())
    def truncate_at_batch_boundary(self, data):
        if not self.batch_sizes:
            return
        keep = data.draw(st.integers(0, len(self.batch_sizes)), label="batches kept")
        offset = sum(count for count, _ in self.batch_sizes[:keep])
        self.log.truncate_to(offset)
        del self.batch_sizes[keep:]
        del self.model[offset:]

    @rule()
    def flush(self):
        self.log.flush()
        assert self.log.recovery_point == self.log.log_end_offset

    @invariant()
    def matches_model(self):
        if not hasattr(self, "log"):
            return
        assert self.log.log_end_offset == len(self.model)
        records = []
        offset = 0
        while offset < self.log.log_end_offset:
            data = self.log.read(offset, 700, self.log.log_end_offset)
            assert data
            position = 0
            while position < len(data):
                header = read_batch_header(data, position)
                records.extend((r.offset, r.value) for r in decode_records(data, header))
                position += header.size
                offset = header.next_offset
        assert records == self.model
        assert self.log.size_bytes == sum(size for _, size in self.batch_sizes)


PartitionLogModel.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_partition_log_matches_model = PartitionLogModel.TestCase
