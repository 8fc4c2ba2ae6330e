"""DescribeLogDirs (key 35), v1-v4: each log dir, its error (KAFKA_STORAGE_ERROR when offline),
the size of every partition in it, and (v4) the file system's total and usable bytes.
`topics=null` describes every partition."""

from __future__ import annotations

import shutil
from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 35
MIN_VERSION = 1
MAX_VERSION = 4


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    result_class = sibling(response, "DescribeLogDirsResult")
    topic_class = sibling(response, "DescribeLogDirsTopic")
    partition_class = sibling(response, "DescribeLogDirsPartition")
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return build(response, throttle_time=timedelta(0), error_code=ErrorCode.cluster_authorization_failed, results=())
    wanted = None
    if request.topics is not None:
        wanted = {(t.topic, p) for t in request.topics for p in t.partitions}
    results = []
    for log_dir, error, partitions in ctx.services.replicas.log_dir_stats():
        by_topic: dict[str, list] = {}
        for tp, size_bytes, offset_lag in partitions:
            if wanted is not None and (tp.topic, tp.partition) not in wanted:
                continue
            by_topic.setdefault(tp.topic, []).append(
                build(partition_class, partition_index=tp.partition, partition_size=size_bytes, offset_lag=offset_lag, is_future_key=False)
            )
        try:
            usage = shutil.disk_usage(log_dir)
            total, usable = usage.total, usage.free
        except OSError:
            total = usable = -1
        results.append(
            build(
                result_class,
                error_code=error if error is not None else ErrorCode.none,
                log_dir=str(log_dir),
                topics=tuple(build(topic_class, name=name, partitions=tuple(parts)) for name, parts in sorted(by_topic.items())),
                total_bytes=total,
                usable_bytes=usable,
            )
        )
    return build(response, throttle_time=timedelta(0), error_code=ErrorCode.none, results=tuple(results))
