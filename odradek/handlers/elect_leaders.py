"""ElectLeaders (key 43), v0-v2: move leadership to the preferred replica (or elect uncleanly).

On one node the leader always is the preferred replica: every named partition answers
ELECTION_NOT_NEEDED. In a cluster the request goes to the controller (NOT_CONTROLLER elsewhere,
and clients find it again); per partition: UNKNOWN_TOPIC_OR_PARTITION, ELECTION_NOT_NEEDED when
the preferred replica (the first) leads already, PREFERRED_LEADER_NOT_AVAILABLE when it is not an
alive ISR member, else the controller moves leadership and the answer waits (up to the request's
timeout) until the metadata shows it. A client may have seen the preferred replica rejoin the ISR
on another broker a moment before the controller's watches tell it, so "not available" is checked
against ZooKeeper itself, and where ZooKeeper says it is available the controller waits for its
own view to catch up before electing. Election type 1 (unclean) elects a live replica for
partitions without a leader (ELIGIBLE_LEADERS_NOT_AVAILABLE if none is alive).
`topic_partitions=null` means every partition; only those that changed are listed, as Kafka does.
A refused request (no ALTER on the cluster, not the controller, or an election type other than
these two) carries its error on the response and on each partition it names, as Kafka's does.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode
from odradek.protocol.topic_partition import TopicPartition

API_KEY = 43
MIN_VERSION = 0
MAX_VERSION = 2

PREFERRED = 0
UNCLEAN = 1


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "ReplicaElectionResult")
    partition_class = sibling(response, "PartitionResult")
    membership = ctx.services.membership
    image = ctx.image
    election_type = getattr(request, "election_type", PREFERRED)
    everything = request.topic_partitions is None
    wanted = (
        [TopicPartition(t.name, i) for t in image.topics.values() for i in range(t.partition_count)]
        if everything else [TopicPartition(e.topic, i) for e in request.topic_partitions for i in e.partitions]
    )
    if not ctx.allowed(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        return _refused(response, result_class, partition_class, request, ErrorCode.cluster_authorization_failed, None)
    if membership is not None and membership.controller is None:
        return _refused(response, result_class, partition_class, request, ErrorCode.not_controller, None)
    if election_type not in (PREFERRED, UNCLEAN):
        return _refused(response, result_class, partition_class, request, ErrorCode.invalid_request,
                        f"Unknown election type {election_type}")
    live = set(image.live_broker_ids())
    outcomes: dict[TopicPartition, ErrorCode] = {}
    to_elect = set()
    for tp in wanted:
        registration = image.partition(tp)
        if registration is None:
            outcomes[tp] = ErrorCode.unknown_topic_or_partition
        elif membership is None:
            outcomes[tp] = ErrorCode.election_not_needed
        elif election_type == UNCLEAN:
            if registration.leader >= 0 and registration.leader in live:
                outcomes[tp] = ErrorCode.election_not_needed
            elif not any(replica in live for replica in registration.replicas):
                outcomes[tp] = ErrorCode.eligible_leaders_not_available
            else:
                to_elect.add(tp)
        elif registration.replicas and registration.leader == registration.replicas[0]:
            outcomes[tp] = ErrorCode.election_not_needed
        elif not _preferred_available(registration.replicas, registration.isr, live):
            outcomes[tp] = ErrorCode.preferred_leader_not_available
        else:
            to_elect.add(tp)
    deadline = time.monotonic() + request.timeout.total_seconds()
    doubtful = [tp for tp, error in outcomes.items() if error == ErrorCode.preferred_leader_not_available]
    if doubtful:
        for tp in await _available_after_all(ctx, doubtful, deadline):
            del outcomes[tp]
            to_elect.add(tp)
    if to_elect:
        membership.controller.elect(to_elect, unclean=election_type == UNCLEAN)
        while to_elect and time.monotonic() < deadline:
            current = ctx.services.metadata.image
            for tp in list(to_elect):
                registration = current.partition(tp)
                done = registration is not None and (
                    registration.leader in live if election_type == UNCLEAN else registration.leader == registration.replicas[0]
                )
                if done:
                    outcomes[tp] = ErrorCode.none
                    to_elect.discard(tp)
            await asyncio.sleep(0.02)
        for tp in to_elect:
            outcomes[tp] = ErrorCode.request_timed_out
    by_topic: dict[str, list] = {}
    for tp, error in outcomes.items():
        if everything and error == ErrorCode.election_not_needed:
            continue
        by_topic.setdefault(tp.topic, []).append(build(partition_class, partition_id=tp.partition, error_code=error, error_message=None))
    results = tuple(build(result_class, topic=topic, partition_result=tuple(parts)) for topic, parts in by_topic.items())
    return build(response, throttle_time=timedelta(0), error_code=ErrorCode.none, replica_election_results=results)


def _refused(response, result_class, partition_class, request, error: ErrorCode, message: str | None):
    """The whole request refused: its error on the response and on every partition it names (a v0
    response has no top-level error code, so its clients see the refusal only there)."""
    results = tuple(
        build(result_class, topic=entry.topic, partition_result=tuple(
            build(partition_class, partition_id=i, error_code=error, error_message=message) for i in entry.partitions))
        for entry in request.topic_partitions or ()
    )
    return build(response, throttle_time=timedelta(0), error_code=error, replica_election_results=results)


async def _available_after_all(ctx: RequestContext, partitions: list[TopicPartition], deadline: float) -> list[TopicPartition]:
    """Those of `partitions` whose preferred replica ZooKeeper shows alive and in the ISR, once
    this broker's image has caught up with it (by the deadline); the others stay unavailable."""
    store = ctx.services.membership.store
    image = ctx.image

    def read() -> dict[TopicPartition, int]:
        """Partition -> partition epoch in ZooKeeper, of those whose preferred replica it shows available."""
        store.wait_until_connected()
        live = store.live_broker_ids()
        versions = {}
        for tp in partitions:
            state = store.partition_state(tp.topic, tp.partition)
            if state is not None and _preferred_available(image.partition(tp).replicas, state.isr, live):
                versions[tp] = state.version
        return versions

    try:
        versions = await asyncio.to_thread(read)
    except Exception:  # noqa: BLE001 - ZooKeeper away: the image's answer stands
        return []
    caught_up = []
    while versions and time.monotonic() < deadline:
        current = ctx.services.metadata.image
        for tp, version in list(versions.items()):
            registration = current.partition(tp)
            if registration is None:
                del versions[tp]
            elif registration.partition_epoch >= version:
                if _preferred_available(registration.replicas, registration.isr, current.live_broker_ids()):
                    caught_up.append(tp)
                del versions[tp]
        if versions:
            await asyncio.sleep(0.02)
    return caught_up


def _preferred_available(replicas, isr, live) -> bool:
    """The preferred replica (the first) is alive and in the ISR: it can lead."""
    return bool(replicas) and replicas[0] in live and replicas[0] in isr
