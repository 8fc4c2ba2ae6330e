"""A small asyncio Kafka client on kio: used by the CLI, follower replication and the controller.

    async with KafkaClient("localhost:9092") as client:
        await Admin(client).create_topics([NewTopic("events", 3, 1)])
        producer = Producer(client, compression="zstd")
        await producer.send("events", b"hello", key=b"k")
        await producer.flush()

Layers: `connection` (one socket, framing, versions) -> `client` (bootstrap, metadata, routing)
-> `admin`, `producer`, `consumer`, `group` (typed operations). It imports only
odradek.protocol, odradek.clock and odradek.security (TLS and SASL), never the broker.
"""

import importlib

# Names are imported when first used (PEP 562): the broker imports one submodule of this package
# (consumer_protocol, for groups) and should not pay for the admin client and the rest at start-up.
_WHERE = {
    "Admin": "admin", "ConfigEntry": "admin", "GroupDescription": "admin", "NewTopic": "admin", "raise_errors": "admin",
    "KafkaClient": "client", "parse_bootstrap_servers": "client", "BrokerConnection": "connection",
    "EARLIEST": "consumer", "LATEST": "consumer", "MAX_TIMESTAMP": "consumer", "Consumer": "consumer",
    "fetch": "consumer", "list_offsets": "consumer", "AuthenticationError": "errors",
    "BrokerUnreachableError": "errors", "ClientError": "errors", "ErrorCode": "errors", "KafkaError": "errors",
    "GroupMember": "group", "ClusterMetadata": "metadata", "TopicMetadata": "metadata", "Producer": "producer",
}


def __getattr__(name: str):
    if name == "TopicPartition":
        from odradek.protocol.topic_partition import TopicPartition

        return TopicPartition
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'odradek.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"odradek.client.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "EARLIEST",
    "LATEST",
    "MAX_TIMESTAMP",
    "Admin",
    "AuthenticationError",
    "BrokerConnection",
    "BrokerUnreachableError",
    "ClientError",
    "ClusterMetadata",
    "ConfigEntry",
    "Consumer",
    "ErrorCode",
    "GroupDescription",
    "GroupMember",
    "KafkaClient",
    "KafkaError",
    "NewTopic",
    "Producer",
    "TopicMetadata",
    "TopicPartition",
    "fetch",
    "list_offsets",
    "parse_bootstrap_servers",
    "raise_errors",
]
