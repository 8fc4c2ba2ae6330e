"""Compressed batches are stored as sent and read back unchanged, for every codec and client."""

import pytest

from .clients import CLIENTS, Record, consume, create_topic, produce
from .segments import batch_headers

CODECS = ["gzip", "snappy", "lz4", "zstd"]
MESSAGES = 2_000
PARTITIONS = 2


def skip_unless_client_supports(client: str, codec: str) -> None:
    if client == "confluent":
        return  # librdkafka has every codec built in
    if client == "kafka-python":
        import kafka.codec as codecs

        module = {"gzip": "gzip", "snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}[codec]
    else:
        import aiokafka.codec as codecs

        module = {"gzip": "gzip", "snappy": "cramjam", "lz4": "cramjam", "zstd": "cramjam"}[codec]
    if not getattr(codecs, f"has_{codec}")():
        pytest.skip(f"{client} needs the {module} module for {codec}, which is not installed")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", CLIENTS)
def test_compressed_messages_round_trip(broker, client, codec):
    skip_unless_client_supports(client, codec)
    topic = f"compressed-{codec}-{client}"
    create_topic(broker.bootstrap_servers, topic, partitions=PARTITIONS)
    records = [
        Record(
            key=f"sensor-{i % 10}".encode(),
            value=f'{{"reading": {i}, "unit": "celsius", "note": "{"compressible " * 10}"}}'.encode(),
            partition=i % PARTITIONS,
            headers=(("codec", codec.encode()),),
        )
        for i in range(MESSAGES)
    ]

    produce(client, broker.bootstrap_servers, topic, records, compression=codec, linger_ms=20)
    consumed = consume(client, broker.bootstrap_servers, topic, range(PARTITIONS), MESSAGES)

    for partition in range(PARTITIONS):
        sent = [(r.key, r.value, r.headers) for r in records if r.partition == partition]
        got = [(m.key, m.value, m.headers) for m in consumed if m.partition == partition]
        assert got == sent, f"partition {partition}"
        stored = batch_headers(broker.log_dir, topic, partition)
        assert {b.compression for b in stored} == {codec}, "the broker did not keep the batches as compressed"
        assert sum(b.record_count for b in stored) == len(sent)
