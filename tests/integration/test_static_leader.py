"""A restarted static leader (KIP-345) gets the group back without a rebalance when its client
speaks JoinGroup v9 (KIP-814 skip_assignment), and with one when it speaks an older version."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.join_group.v5 import request as join_v5
from kio.schema.join_group.v9 import request as join_v9
from kio.schema.sync_group.v5 import request as sync_v5

from .wire import WireClient

SUBSCRIPTION = b"\x00\x01\x00\x00\x00\x01\x00\x01t\xff\xff\xff\xff"  # consumer protocol v1, topic "t"


def join(client: WireClient, version: int, group: str, member_id: str = ""):
    module = join_v9 if version == 9 else join_v5
    request = module.JoinGroupRequest(
        group_id=group,
        session_timeout=timedelta(seconds=30),
        rebalance_timeout=timedelta(seconds=30),
        member_id=member_id,
        group_instance_id="leader-instance",
        protocol_type="consumer",
        protocols=(module.JoinGroupRequestProtocol(name="range", metadata=SUBSCRIPTION),),
        **({"reason": None} if version == 9 else {}),
    )
    return client.request(11, version, request)


def sync(client: WireClient, group: str, generation: int, member_id: str, assignment: bytes):
    request = sync_v5.SyncGroupRequest(
        group_id=group, generation_id=generation, member_id=member_id, group_instance_id="leader-instance",
        protocol_type="consumer", protocol_name="range",
        assignments=(sync_v5.SyncGroupRequestAssignment(member_id=member_id, assignment=assignment),),
    )
    return client.request(14, 5, request)


@pytest.mark.parametrize("version", [9, 5])
def test_restarted_static_leader(start_broker, version: int) -> None:
    broker = start_broker(**{"group.initial.rebalance.delay.ms": 0})
    group = f"static-leader-v{version}"
    with WireClient(broker.bootstrap_servers) as client:
        client.find_coordinator(group)
        first = join(client, version, group)
        assert first.error_code == ErrorCode.none
        assert sync(client, group, first.generation_id, first.member_id, b"my-assignment").error_code == ErrorCode.none
    with WireClient(broker.bootstrap_servers) as client:  # the same instance, restarted
        again = join(client, version, group)
        assert again.error_code == ErrorCode.none
        assert again.member_id != first.member_id and again.leader == again.member_id
        if version == 9:
            assert again.skip_assignment is True
            assert again.generation_id == first.generation_id, "no rebalance"
            assert [m.member_id for m in again.members] == [again.member_id]
            synced = sync(client, group, again.generation_id, again.member_id, b"")
            assert synced.assignment == b"my-assignment", "it keeps what it had"
        else:
            assert again.generation_id == first.generation_id + 1, "older clients rebalance, as in Kafka"
