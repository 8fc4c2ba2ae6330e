"""An idempotent producer's messages arrive exactly once, in order, under a real producer id."""

import pytest

from .clients import CLIENTS, Record, by_partition, consume, create_topic, high_watermarks, produce
from .segments import batch_headers

MESSAGES = 10_000
PARTITIONS = 3


@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_producer_delivers_each_message_exactly_once_in_order(broker, client):
    topic = f"idempotent-{client}"
    create_topic(broker.bootstrap_servers, topic, partitions=PARTITIONS)
    records = [Record(key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % PARTITIONS) for i in range(MESSAGES)]

    produce(client, broker.bootstrap_servers, topic, records, idempotent=True, acks="all")
    consumed = consume(client, broker.bootstrap_servers, topic, range(PARTITIONS), MESSAGES)

    got = by_partition(consumed)
    for partition in range(PARTITIONS):
        sent = [r.value for r in records if r.partition == partition]
        assert [m.value for m in got[partition]] == sent, f"partition {partition}"
        assert [m.offset for m in got[partition]] == list(range(len(sent)))
        stored = batch_headers(broker.log_dir, topic, partition)
        assert all(b.producer_id >= 0 for b in stored), "batches stored without a producer id"
        assert len({b.producer_id for b in stored}) == 1
        assert [b.base_sequence for b in stored] == [b.base_offset for b in stored], "sequence numbers do not follow offsets"
    assert high_watermarks(broker.bootstrap_servers, topic, range(PARTITIONS)) == {
        p: sum(1 for r in records if r.partition == p) for p in range(PARTITIONS)
    }
