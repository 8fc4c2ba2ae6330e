"""Group configs (KIP-848, resource type GROUP): kafka-configs --entity-type groups and
AdminClient.incremental_alter_configs set a consumer group's own session timeout and heartbeat
interval; they are validated against the broker's bounds, survive a restart, and the group's
members are told the new heartbeat interval (a share or streams config is refused clearly)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource
from kio.schema.consumer_group_heartbeat.v1 import request as heartbeat_v1
from kio.schema.errors import ErrorCode

from .clients import create_topic
from .wire import WireClient


def alter(bootstrap: str, group: str, **values: str | None) -> None:
    entries = [
        ConfigEntry(name.replace("_", "."), value,
                    incremental_operation=AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET)
        for name, value in values.items()
    ]
    resource = ConfigResource("group", group, incremental_configs=entries)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.incremental_alter_configs([resource])[resource].result(30)


def describe(bootstrap: str, group: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource("group", group)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_configs([resource])[resource].result(30)


def heartbeat_interval(bootstrap: str, group: str) -> int:
    with WireClient(bootstrap) as client:
        client.find_coordinator(group)
        request = heartbeat_v1.ConsumerGroupHeartbeatRequest(
            group_id=group, member_id=str(uuid.uuid4()), member_epoch=0, instance_id=None, rack_id=None,
            rebalance_timeout=timedelta(seconds=30), subscribed_topic_names=("configured-events",),
            subscribed_topic_regex=None, server_assignor=None, topic_partitions=(),
        )
        answer = client.request(68, 1, request)
        assert answer.error_code == ErrorCode.none
        return int(answer.heartbeat_interval.total_seconds() * 1000)


def test_group_config_is_set_described_applied_and_kept_across_restart(start_broker):
    broker = start_broker()
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "configured-events", partitions=2)

    fresh = describe(bootstrap, "configured")
    assert fresh["consumer.session.timeout.ms"].value == "45000"
    assert fresh["consumer.session.timeout.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert heartbeat_interval(bootstrap, "configured") == 5000

    alter(bootstrap, "configured", consumer_session_timeout_ms="50000", consumer_heartbeat_interval_ms="6000")
    described = describe(bootstrap, "configured")
    assert described["consumer.session.timeout.ms"].value == "50000"
    assert described["consumer.session.timeout.ms"].source == ConfigSource.GROUP_CONFIG.value
    assert described["consumer.heartbeat.interval.ms"].value == "6000"
    assert heartbeat_interval(bootstrap, "configured") == 6000, "members are told the group's own interval"
    assert describe(bootstrap, "another")["consumer.heartbeat.interval.ms"].value == "5000", "other groups keep the default"

    broker.stop()
    broker.start()
    assert describe(bootstrap, "configured")["consumer.heartbeat.interval.ms"].value == "6000"
    assert heartbeat_interval(bootstrap, "configured") == 6000

    alter(bootstrap, "configured", consumer_heartbeat_interval_ms=None)
    assert describe(bootstrap, "configured")["consumer.heartbeat.interval.ms"].source == ConfigSource.DEFAULT_CONFIG.value


@pytest.mark.parametrize("values, message", [
    ({"consumer_session_timeout_ms": "1000"}, "must be greater than or equal to group.consumer.min.session.timeout.ms"),
    ({"consumer_session_timeout_ms": "600000"}, "must be less than or equal to group.consumer.max.session.timeout.ms"),
    ({"consumer_heartbeat_interval_ms": "abc"}, "consumer.heartbeat.interval.ms"),
    ({"share_record_lock_duration_ms": "30000"}, "unknown config 'share.record.lock.duration.ms'"),
])
def test_bad_group_config_is_refused_with_invalid_config(broker, values, message):
    with pytest.raises(confluent_kafka.KafkaException) as refused:
        alter(broker.bootstrap_servers, "refused", **values)
    error = refused.value.args[0]
    assert error.code() == confluent_kafka.KafkaError.INVALID_CONFIG
    assert message in error.str()
    assert describe(broker.bootstrap_servers, "refused")["consumer.session.timeout.ms"].value == "45000"
