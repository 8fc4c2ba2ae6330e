"""The handler registry: API key -> handler module, from which ApiVersions is derived.

Each handler module declares API_KEY, MIN_VERSION, MAX_VERSION and `async def handle(ctx, request)`.
A version is served only if the module declares it and kio has its schema; nothing else is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Awaitable, Callable


from odradek.handlers import (
    add_offsets_to_txn,
    add_partitions_to_txn,
    describe_transactions,
    end_txn,
    list_transactions,
    txn_offset_commit,
    write_txn_markers,
    alter_configs,
    api_versions,
    create_partitions,
    delete_records,
    describe_configs,
    describe_log_dirs,
    describe_producers,
    describe_topic_partitions,
    elect_leaders,
    offset_for_leader_epoch,
    partition_reassignments,
    list_partition_reassignments,
    incremental_alter_configs,
    consumer_group_describe,
    consumer_group_heartbeat,
    create_topics,
    delete_groups,
    delete_topics,
    describe_cluster,
    describe_groups,
    fetch,
    find_coordinator,
    heartbeat,
    init_producer_id,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    produce,
    sasl_authenticate,
    sasl_handshake,
    sync_group,
    alter_user_scram_credentials,
    describe_user_scram_credentials,
    create_acls,
    delete_acls,
    describe_acls,
    describe_client_quotas,
    alter_client_quotas,
    create_delegation_token,
    renew_delegation_token,
    expire_delegation_token,
    describe_delegation_token,
)

HANDLER_MODULES: tuple[ModuleType, ...] = (
    produce,
    fetch,
    list_offsets,
    metadata,
    offset_commit,
    offset_fetch,
    find_coordinator,
    join_group,
    heartbeat,
    leave_group,
    sync_group,
    describe_groups,
    list_groups,
    api_versions,
    create_topics,
    delete_topics,
    init_producer_id,
    add_partitions_to_txn,
    add_offsets_to_txn,
    end_txn,
    write_txn_markers,
    txn_offset_commit,
    delete_groups,
    offset_delete,
    describe_cluster,
    consumer_group_heartbeat,
    consumer_group_describe,
    describe_configs,
    alter_configs,
    incremental_alter_configs,
    create_partitions,
    describe_topic_partitions,
    delete_records,
    elect_leaders,
    offset_for_leader_epoch,
    partition_reassignments,
    list_partition_reassignments,
    describe_producers,
    describe_log_dirs,
    describe_transactions,
    list_transactions,
    sasl_handshake,
    sasl_authenticate,
    describe_user_scram_credentials,
    alter_user_scram_credentials,
    describe_acls,
    create_acls,
    delete_acls,
    describe_client_quotas,
    alter_client_quotas,
    create_delegation_token,
    renew_delegation_token,
    expire_delegation_token,
    describe_delegation_token,
)


@dataclass(frozen=True)
class Handler:
    api_key: int
    name: str
    min_version: int
    max_version: int
    handle: Callable[..., Awaitable[Any]]
    # Versions we advertise but answer with UNSUPPORTED_VERSION (see produce.py).
    rejected_below: int

    def supports(self, version: int) -> bool:
        return self.rejected_below <= version <= self.max_version


def _handler(module: ModuleType) -> Handler:
    return Handler(
        api_key=module.API_KEY,
        name=module.__name__.rsplit(".", 1)[-1],
        min_version=module.MIN_VERSION,
        max_version=module.MAX_VERSION,
        handle=module.handle,
        rejected_below=getattr(module, "REJECTED_BELOW", module.MIN_VERSION),
    )


HANDLERS: dict[int, Handler] = {module.API_KEY: _handler(module) for module in HANDLER_MODULES}
