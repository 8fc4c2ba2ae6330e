"""ConsumerGroupHeartbeat (key 68), v0-v1: the consumer rebalance protocol (KIP-848).

Joining (epoch 0), heartbeating, leaving (epoch -1, or -2 for a static member). The broker
assigns with its `uniform` or `range` assignor and hands out partitions incrementally: what a
member must give up is revoked first, and given to others only after it has let go. v1 members
choose their own member id (KIP-1082); v0 members get one from the broker. Topics travel as ids.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.protocol.errors import ErrorCode
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, error_response, sibling

API_KEY = 68
MIN_VERSION = 0
MAX_VERSION = 1


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    image = ctx.image
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        return error_response(response, ErrorCode.group_authorization_failed)
    subscribed = request.subscribed_topic_names or ()
    hidden = sorted(t for t in subscribed if not ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, t))
    if hidden:
        return build(response, throttle_time=timedelta(0), error_code=ErrorCode.topic_authorization_failed,
                     error_message=f"not authorized to describe topics {', '.join(hidden)}", member_id=request.member_id or None,
                     member_epoch=request.member_epoch, heartbeat_interval=timedelta(0), assignment=None)
    owned = None
    if request.topic_partitions is not None:
        owned = {}
        for entry in request.topic_partitions:
            record = image.topic_by_id(entry.topic_id)
            if record is not None:
                owned[record.name] = set(entry.partitions)
    rebalance_timeout = getattr(request, "rebalance_timeout", None)
    result = await ctx.services.groups.consumer_group_heartbeat(
        group_id=request.group_id,
        member_id=request.member_id,
        member_epoch=request.member_epoch,
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=int(rebalance_timeout.total_seconds() * 1000) if rebalance_timeout is not None else -1,
        subscribed_topic_names=list(request.subscribed_topic_names) if request.subscribed_topic_names is not None else None,
        subscribed_topic_regex=getattr(request, "subscribed_topic_regex", None),
        server_assignor=request.server_assignor,
        owned=owned,
        client_id=ctx.client_id or "",
        client_host=ctx.peer.rsplit(":", 1)[0],
        client_chooses_member_id=ctx.api_version >= 1,
    )
    assignment = None
    if result.assignment is not None:
        partitions_class = sibling(response, "TopicPartitions")
        topic_partitions = []
        for topic, partitions in sorted(result.assignment.items()):
            record = image.topic(topic)
            if record is not None:
                topic_partitions.append(build(partitions_class, topic_id=record.topic_id, partitions=tuple(sorted(partitions))))
        assignment = build(sibling(response, "Assignment"), topic_partitions=tuple(topic_partitions))
    return build(
        response,
        throttle_time=timedelta(0),
        error_code=result.error,
        error_message=result.message,
        member_id=result.member_id,
        member_epoch=result.member_epoch,
        heartbeat_interval=timedelta(milliseconds=result.heartbeat_interval_ms),
        assignment=assignment,
    )
