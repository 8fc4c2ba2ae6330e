"""DescribeClientQuotas (key 48), v0-v1: the quotas set for users, client ids and IPs.

odradek does not enforce client quotas yet and offers no AlterClientQuotas, so none can be set:
the answer is always "no quota matches", which is the truth. Kafka's `kafka-configs --describe
--entity-type users` asks this before it lists a user's SCRAM credentials, so the tool needs it.
Filters are still checked as Kafka checks them (INVALID_REQUEST for an unknown match type or an
entity type named twice), and DESCRIBE_CONFIGS on the cluster is required.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.protocol.errors import ErrorCode
from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType

API_KEY = 48
MIN_VERSION = 0
MAX_VERSION = 1

MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY = 0, 1, 2
ENTITY_TYPES = ("user", "client-id", "ip")


async def handle(ctx: RequestContext, request):
    def answer(error: ErrorCode, message: str | None = None):
        return build(ctx.response_class, throttle_time=timedelta(0), error_code=error, error_message=message,
                     entries=() if error == ErrorCode.none else None)

    if not ctx.allowed(Operation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME):
        return answer(ErrorCode.cluster_authorization_failed)
    seen = set()
    for component in request.components:
        if component.entity_type not in ENTITY_TYPES:
            return answer(ErrorCode.invalid_request, f"Custom entity type '{component.entity_type}' not supported")
        if component.entity_type in seen:
            return answer(ErrorCode.invalid_request, f"Duplicate {component.entity_type} filter component entity type")
        seen.add(component.entity_type)
        if component.match_type not in (MATCH_EXACT, MATCH_DEFAULT, MATCH_ANY):
            return answer(ErrorCode.invalid_request, f"Unknown match type {component.match_type}")
        if component.match_type == MATCH_EXACT and component.match is None:
            return answer(ErrorCode.invalid_request, "Request specified exact match but no entity name")
    return answer(ErrorCode.none)
