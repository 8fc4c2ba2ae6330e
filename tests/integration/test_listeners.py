"""Each listener advertises itself: a client that bootstraps on a listener is told the brokers'
endpoints on that listener (Metadata, FindCoordinator), as Kafka does with several listeners."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from conftest import BrokerProcess, free_port

from .clients import Record, consume, create_topic, produce


def test_metadata_on_each_listener_names_that_listeners_endpoint(tmp_path):
    internal = free_port()
    broker = BrokerProcess(tmp_path, {"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT"})
    broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},INTERNAL://127.0.0.1:{internal}"
    broker.start()
    try:
        for bootstrap, port in ((broker.bootstrap_servers, broker.port), (f"127.0.0.1:{internal}", internal)):
            metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
            assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", port)], bootstrap

        create_topic(f"127.0.0.1:{internal}", "via-internal", partitions=1)
        produce("confluent", f"127.0.0.1:{internal}", "via-internal", [Record(None, b"x", partition=0)])
        assert [m.value for m in consume("confluent", broker.bootstrap_servers, "via-internal", [0], 1)] == [b"x"]
    finally:
        assert broker.stop() == 0, broker.output()
