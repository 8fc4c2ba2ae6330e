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

from odradek.client.admin import Admin, ConfigEntry, GroupDescription, NewTopic, raise_errors
from odradek.client.client import KafkaClient, parse_bootstrap_servers
from odradek.client.connection import BrokerConnection
from odradek.client.consumer import EARLIEST, LATEST, MAX_TIMESTAMP, Consumer, fetch, list_offsets
from odradek.client.errors import AuthenticationError, BrokerUnreachableError, ClientError, ErrorCode, KafkaError
from odradek.client.group import GroupMember
from odradek.client.metadata import ClusterMetadata, TopicMetadata
from odradek.client.producer import Producer
from odradek.protocol.topic_partition import TopicPartition

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
