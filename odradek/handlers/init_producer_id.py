"""InitProducerId (key 22), v0-v5: producer ids for idempotent and transactional producers.

Without a transactional id every call gets a fresh producer id at epoch 0, as Kafka does. With
one, the transaction coordinator of that id answers (see coordinator/transaction_coordinator.py):
the id's producer id with its epoch bumped, fencing older producers; v3+ may name the producer id
and epoch the client had (KIP-360) to bump its own epoch after an abortable error.
"""

from __future__ import annotations

from datetime import timedelta

from odradek.coordinator.transaction_coordinator import TxnError
from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build
from odradek.handlers.transactions import fenced_for_version
from odradek.protocol.errors import ErrorCode, KafkaError

API_KEY = 22
MIN_VERSION = 0
MAX_VERSION = 5


async def handle(ctx: RequestContext, request):
    response = ctx.response_class

    def answer(code, producer_id=-1, epoch=-1):
        return build(response, throttle_time=timedelta(0), error_code=code, producer_id=producer_id, producer_epoch=epoch)

    if request.transactional_id is not None:
        if not ctx.allowed(Operation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id):
            return answer(ErrorCode.transactional_id_authorization_failed)
        try:
            producer_id, epoch = await ctx.services.transactions.init_producer_id(
                request.transactional_id,
                int(request.transaction_timeout.total_seconds() * 1000),
                getattr(request, "producer_id", -1),
                getattr(request, "producer_epoch", -1),
            )
        except TxnError as error:
            return answer(fenced_for_version(error.code, ctx.api_version, 4))
        return answer(ErrorCode.none, producer_id, epoch)
    if not (ctx.allowed(Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER_NAME) or _writes_any_topic(ctx)):
        return answer(ErrorCode.cluster_authorization_failed)
    try:
        producer_id = await ctx.services.producer_ids.next_producer_id()
    except KafkaError as error:
        return answer(error.code)
    return answer(ErrorCode.none, producer_id, 0)



def _writes_any_topic(ctx: RequestContext) -> bool:
    """KIP-679: an idempotent producer needs only WRITE on some topic, not IDEMPOTENT_WRITE."""
    acls = ctx.services.acls
    if acls is None or acls.authorizer is None:
        return True
    return acls.authorizer.authorize_any(ctx.principal, ctx.client_host, Operation.WRITE, ResourceType.TOPIC,
                                         ctx.image.topics)
