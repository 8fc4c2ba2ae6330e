"""OffsetCommit (key 8), v2-v9.

A member of the group commits with its generation; generation -1 with no member id is a
"simple" commit (manual assignment, admin tools), allowed while the group has no members.
Each partition gets its own error (unknown partition, metadata too large); validation errors
of the member apply to all of them. v2-v4 carry a retention time, which Kafka ignores too.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.security.acl import Operation, ResourceType
from odradek.protocol.errors import ErrorCode
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling

API_KEY = 8
MIN_VERSION = 2
MAX_VERSION = 9


def requested_offsets(request) -> list[tuple[str, int, int, int, str | None]]:
    """(topic, partition, offset, leader epoch, metadata) of each offset an OffsetCommit or
    TxnOffsetCommit asks to commit."""
    return [
        (topic.name, p.partition_index, p.committed_offset, getattr(p, "committed_leader_epoch", -1), p.committed_metadata)
        for topic in request.topics
        for p in topic.partitions
    ]


def topic_results(response, prefix: str, wanted, errors) -> tuple:
    """The per-topic answers of an OffsetCommit (`prefix` "OffsetCommit") or TxnOffsetCommit
    ("TxnOffsetCommit"): one error per requested partition, in request order."""
    partition_class = sibling(response, f"{prefix}ResponsePartition")
    topic_class = sibling(response, f"{prefix}ResponseTopic")
    by_topic: dict[str, list] = {}
    for (topic, partition, *_), error in zip(wanted, errors):
        by_topic.setdefault(topic, []).append(build(partition_class, partition_index=partition, error_code=error))
    return tuple(build(topic_class, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    wanted = requested_offsets(request)
    if not ctx.allowed(Operation.READ, ResourceType.GROUP, request.group_id):
        errors = [ErrorCode.group_authorization_failed] * len(wanted)
        return build(response, throttle_time=timedelta(0), topics=topic_results(response, "OffsetCommit", wanted, errors))
    readable = {topic: ctx.allowed(Operation.READ, ResourceType.TOPIC, topic) for topic, *_ in wanted}
    allowed = [entry for entry in wanted if readable[entry[0]]]
    committed = iter(await ctx.services.groups.commit_offsets(
        request.group_id,
        getattr(request, "generation_id_or_member_epoch", -1),
        request.member_id,
        getattr(request, "group_instance_id", None),
        allowed,
    ) if allowed else [])
    errors = [next(committed) if readable[entry[0]] else ErrorCode.topic_authorization_failed for entry in wanted]
    return build(response, throttle_time=timedelta(0), topics=topic_results(response, "OffsetCommit", wanted, errors))
