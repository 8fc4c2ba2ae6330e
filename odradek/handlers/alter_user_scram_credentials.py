"""AlterUserScramCredentials (key 51), v0: add, replace or delete users' SCRAM credentials.

The client sends the salted password (never the password); the broker keeps what Kafka keeps
(salt, StoredKey, ServerKey, iterations) as the user's config, in the metadata store
(`/config/users/<user>` with ZooKeeper), so Kafka's `kafka-configs --alter --add-config
'SCRAM-SHA-512=[password=...]'` and `--delete-config` work. One result per user, with Kafka's
errors: UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL (iterations outside 4096-16384, an empty
name, salt or password), DUPLICATE_RESOURCE (one user and mechanism twice), RESOURCE_NOT_FOUND
(deleting a credential that does not exist). A user's changes are stored together or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.handlers.responses import build, sibling
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.security.scram import MAX_ITERATIONS, MECHANISM_TYPES, MIN_ITERATIONS, credential_from_salted

API_KEY = 51
MIN_VERSION = 0
MAX_VERSION = 0

MECHANISM_NAMES = {number: name for name, number in MECHANISM_TYPES.items()}


async def handle(ctx: RequestContext, request):
    result_class = sibling(ctx.response_class, "AlterUserScramCredentialsResult")
    changes: dict[str, list] = defaultdict(list)  # user -> [(mechanism, upsertion or None)], request order
    for deletion in request.deletions:
        changes[deletion.name].append((int(deletion.mechanism), None))
    for upsertion in request.upsertions:
        changes[upsertion.name].append((int(upsertion.mechanism), upsertion))
    results = []
    if not ctx.allowed(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        results = [build(result_class, user=user, error_code=ErrorCode.cluster_authorization_failed, error_message=None)
                   for user in changes]
        return build(ctx.response_class, throttle_time=timedelta(0), results=tuple(results))
    for user, user_changes in changes.items():
        try:
            await _alter(ctx, user, user_changes)
            error, message = ErrorCode.none, None
        except KafkaError as failure:
            error, message = failure.code, failure.message or None
        results.append(build(result_class, user=user, error_code=error, error_message=message))
    return build(ctx.response_class, throttle_time=timedelta(0), results=tuple(results))


async def _alter(ctx: RequestContext, user: str, user_changes: list) -> None:
    if not user:
        raise KafkaError(ErrorCode.unacceptable_credential, "Username must not be empty")
    mechanisms = [mechanism for mechanism, _ in user_changes]
    if len(set(mechanisms)) != len(mechanisms):
        raise KafkaError(ErrorCode.duplicate_resource, "A user credential cannot be altered twice in the same request")
    configs = ctx.services.configs
    current = configs.user_configs(user)
    updated = dict(current)
    for mechanism_type, upsertion in user_changes:
        mechanism = MECHANISM_NAMES.get(mechanism_type)
        if mechanism is None:
            raise KafkaError(ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")
        if upsertion is None:
            if mechanism not in current:
                raise KafkaError(ErrorCode.resource_not_found, "Attempt to delete a user credential that does not exist")
            del updated[mechanism]
            continue
        if upsertion.iterations < MIN_ITERATIONS:
            raise KafkaError(ErrorCode.unacceptable_credential, f"Too few iterations: minimum {MIN_ITERATIONS}")
        if upsertion.iterations > MAX_ITERATIONS:
            raise KafkaError(ErrorCode.unacceptable_credential, f"Too many iterations: maximum {MAX_ITERATIONS}")
        if not upsertion.salt or not upsertion.salted_password:
            raise KafkaError(ErrorCode.unacceptable_credential, "Salt and salted password must not be empty")
        credential = credential_from_salted(mechanism, bytes(upsertion.salted_password), bytes(upsertion.salt),
                                            int(upsertion.iterations))
        updated[mechanism] = credential.to_kafka()
    await ctx.services.controller.run(configs.set_user_configs, user, updated)
