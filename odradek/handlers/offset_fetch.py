"""OffsetFetch (key 9), v1-v9: committed offsets of a group (v8+: of several groups at once).

Partitions without a commit answer offset -1 and no error; topics=null (v2+) means every
committed partition of the group. With require_stable (v7+, read_committed consumers) a partition
whose offset an open transaction is committing answers UNSTABLE_OFFSET_COMMIT, which clients retry
until the transaction ends.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 9
MIN_VERSION = 1
MAX_VERSION = 9


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    groups = ctx.services.groups
    stable = bool(getattr(request, "require_stable", False))
    if ctx.api_version >= 8:
        group_class = sibling(response, "OffsetFetchResponseGroup")
        topic_class = sibling(response, "OffsetFetchResponseTopics")
        partition_class = sibling(response, "OffsetFetchResponsePartitions")
        answers = tuple(
            build(
                group_class,
                group_id=group.group_id,
                topics=() if error else _topics(groups, group.group_id, group.topics, topic_class, partition_class,
                                                 require_stable=stable, ctx=ctx),
                error_code=error or ErrorCode.none,
            )
            for group in request.groups
            for error in (_group_error(ctx, groups, group.group_id),)
        )

        return build(response, throttle_time=timedelta(0), groups=answers)
    topic_class = sibling(response, "OffsetFetchResponseTopic")
    partition_class = sibling(response, "OffsetFetchResponsePartition")
    error = _group_error(ctx, groups, request.group_id)
    topics = _topics(groups, request.group_id, request.topics, topic_class, partition_class, error, require_stable=stable,
                     ctx=ctx)
    return build(response, throttle_time=timedelta(0), topics=topics, error_code=error or ErrorCode.none)


def _group_error(ctx: RequestContext, groups, group_id: str):
    """GROUP_AUTHORIZATION_FAILED without DESCRIBE on the group (Kafka's check), else the
    coordinator's answer."""
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.GROUP, group_id):
        return ErrorCode.group_authorization_failed
    return groups.coordinator_error(group_id)


def _topics(groups, group_id: str, requested, topic_class, partition_class, error=None, *, require_stable=False,
            ctx: RequestContext | None = None):
    """The committed offsets; with `error` (not the coordinator), each requested partition carries
    it (v0-v1 have no top-level error code). Topics the principal may not describe are left out of
    "all topics" and answered TOPIC_AUTHORIZATION_FAILED when named."""
    wanted = None if requested is None else [(t.name, list(t.partition_indexes)) for t in requested]
    if error is not None:
        entries = [(topic, partition, None) for topic, partitions in (wanted or []) for partition in partitions]
    else:
        entries = groups.fetch_offsets(group_id, wanted)
    by_topic: dict[str, list] = {}
    described: dict[str, bool] = {}
    for topic, partition, committed in entries:
        code = error or ErrorCode.none
        if ctx is not None and error is None:
            if topic not in described:
                described[topic] = ctx.allowed(Operation.DESCRIBE, ResourceType.TOPIC, topic)
            if not described[topic]:
                if wanted is None:
                    continue
                code, committed = ErrorCode.topic_authorization_failed, None
        if require_stable and error is None and groups.has_pending_offsets(group_id, (topic, partition)):
            code, committed = ErrorCode.unstable_offset_commit, None
        by_topic.setdefault(topic, []).append(
            build(
                partition_class,
                partition_index=partition,
                committed_offset=committed.offset if committed else -1,
                committed_leader_epoch=committed.leader_epoch if committed else -1,
                metadata=committed.metadata if committed else "",
                error_code=code,
            )
        )
    return tuple(build(topic_class, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())
