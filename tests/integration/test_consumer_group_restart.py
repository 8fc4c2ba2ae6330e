"""A consumer-protocol group (KIP-848) survives a broker restart: members keep their member id,
epoch and partitions, because the group lives in `__consumer_offsets` like every group's state."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from kio.schema.consumer_group_describe.v1 import request as describe_v1
from kio.schema.consumer_group_heartbeat.v1 import request as heartbeat_v1
from kio.schema.errors import ErrorCode

from .clients import create_topic
from .wire import WireClient


def heartbeat(client: WireClient, member_id: str, epoch: int, owned=None, *, join: bool = False):
    request = heartbeat_v1.ConsumerGroupHeartbeatRequest(
        group_id="durable",
        member_id=member_id,
        member_epoch=epoch,
        instance_id=None,
        rack_id=None,
        rebalance_timeout=timedelta(seconds=30) if join else timedelta(milliseconds=-1),
        subscribed_topic_names=("events",) if join else None,
        subscribed_topic_regex=None,
        server_assignor=None,
        topic_partitions=() if join else owned,
    )
    return client.request(68, 1, request)


def owned_of(response) -> tuple:
    return tuple(
        heartbeat_v1.TopicPartitions(topic_id=t.topic_id, partitions=t.partitions) for t in response.assignment.topic_partitions
    )


@pytest.mark.parametrize("restart", ["sigterm", "kill -9"])
def test_consumer_group_members_keep_their_partitions_across_restart(start_broker, restart: str) -> None:
    broker = start_broker()
    create_topic(broker.bootstrap_servers, "events", partitions=4)
    members = [str(uuid.uuid4()), str(uuid.uuid4())]
    with WireClient(broker.bootstrap_servers) as client:
        client.find_coordinator("durable")
        first = heartbeat(client, members[0], 0, join=True)
        second = heartbeat(client, members[1], 0, join=True)
        assert first.error_code == second.error_code == ErrorCode.none
        # Reconcile until both hold two partitions at the group's epoch.
        state = {members[0]: first, members[1]: second}
        owned = {m: owned_of(r) if r.assignment else () for m, r in state.items()}
        for _ in range(6):
            for member in members:
                answer = heartbeat(client, member, state[member].member_epoch, owned[member])
                assert answer.error_code == ErrorCode.none
                if answer.assignment is not None:
                    owned[member] = owned_of(answer)
                state[member] = answer
        assert sorted(len(p.partitions) for m in members for p in owned[m]) == [2, 2]
        epochs = {m: state[m].member_epoch for m in members}

    if restart == "sigterm":
        broker.stop()
    else:
        broker.kill()
    broker.start()

    with WireClient(broker.bootstrap_servers) as client:
        client.find_coordinator("durable")
        for member in members:
            answer = heartbeat(client, member, epochs[member], owned[member])
            assert answer.error_code == ErrorCode.none, "the member is still known after the restart"
            assert answer.member_epoch == epochs[member]
        described = client.request(
            69, 1, describe_v1.ConsumerGroupDescribeRequest(group_ids=("durable",), include_authorized_operations=False)
        )
        (group,) = described.groups
        assert group.error_code == ErrorCode.none
        assert sorted(m.member_id for m in group.members) == sorted(members)
        assert sorted(sum(len(t.partitions) for t in m.assignment.topic_partitions) for m in group.members) == [2, 2]
