"""DescribeCluster (key 60), v0-v2: the live brokers (their endpoint on this request's listener),
the cluster id and the controller, from the metadata image."""

from __future__ import annotations

from datetime import timedelta

from odradek.protocol.schemas import AUTHORIZED_OPERATIONS_OMITTED
from odradek.security.acl import CLUSTER_NAME, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 60
MIN_VERSION = 0
MAX_VERSION = 2

ENDPOINT_TYPE_BROKERS = 1


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    image = ctx.image
    endpoint_type = getattr(request, "endpoint_type", ENDPOINT_TYPE_BROKERS)
    if endpoint_type != ENDPOINT_TYPE_BROKERS:
        return build(
            response,
            throttle_time=timedelta(0),
            error_code=ErrorCode.unsupported_endpoint_type,
            error_message=f"endpoint type {endpoint_type} is not served; only brokers (1)",
            endpoint_type=endpoint_type,
            cluster_id=image.cluster_id,
            controller_id=-1,
            brokers=(),
            cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
        )
    broker_class = sibling(response, "DescribeClusterBroker")
    brokers = tuple(
        build(broker_class, broker_id=broker.node_id, host=endpoint.host, port=endpoint.port, rack=broker.rack,
              is_fenced=broker.fenced)
        for broker in image.brokers.values()
        if (endpoint := ctx.endpoint_of(broker)) is not None
    )
    return build(
        response,
        throttle_time=timedelta(0),
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=ENDPOINT_TYPE_BROKERS,
        cluster_id=image.cluster_id,
        controller_id=image.controller_id,
        brokers=brokers,
        cluster_authorized_operations=ctx.authorized_operations(ResourceType.CLUSTER, CLUSTER_NAME)
        if request.include_cluster_authorized_operations else AUTHORIZED_OPERATIONS_OMITTED,
    )
