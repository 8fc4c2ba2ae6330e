"""DescribeCluster (key 60), v0-v2: this broker, the cluster id and the controller (ourselves)."""

from __future__ import annotations

from datetime import timedelta

from odradek.protocol.schemas import AUTHORIZED_OPERATIONS_OMITTED
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode

API_KEY = 60
MIN_VERSION = 0
MAX_VERSION = 2

ENDPOINT_TYPE_BROKERS = 1


async def handle(ctx: RequestContext, request):
    response = ctx.response_class
    services = ctx.services
    endpoint_type = getattr(request, "endpoint_type", ENDPOINT_TYPE_BROKERS)
    if endpoint_type != ENDPOINT_TYPE_BROKERS:
        return build(
            response,
            throttle_time=timedelta(0),
            error_code=ErrorCode.unsupported_endpoint_type,
            error_message=f"endpoint type {endpoint_type} is not served; only brokers (1)",
            endpoint_type=endpoint_type,
            cluster_id=services.cluster_id,
            controller_id=-1,
            brokers=(),
            cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
        )
    broker = build(
        sibling(response, "DescribeClusterBroker"),
        broker_id=services.node_id,
        host=services.advertised_host,
        port=services.advertised_port,
        rack=None,
        is_fenced=False,
    )
    return build(
        response,
        throttle_time=timedelta(0),
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=ENDPOINT_TYPE_BROKERS,
        cluster_id=services.cluster_id,
        controller_id=services.node_id,
        brokers=(broker,),
        cluster_authorized_operations=AUTHORIZED_OPERATIONS_OMITTED,
    )
