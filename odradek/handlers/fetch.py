"""Fetch (key 1), v4-v17, for consumers and for follower replicas.

Per partition: whole batches from the first batch holding `fetch_offset`, up to
`partition_max_bytes`, bounded by the high watermark for a read_uncommitted consumer, by the last
stable offset for a read_committed one (which also gets the aborted transactions among the
batches, from the transaction indexes, to drop their records), and by the log end for a
follower (replica_id >= 0, from v15 in replica_state); the response as a whole stays within
`max_bytes` except that the first partition with data always gets one whole batch (KIP-74).
A follower's fetch offset is its log end offset: the leader records it, which may move the high
watermark. When `last_fetched_epoch` (v12+) says the fetcher's log diverged from ours, the answer
is `diverging_epoch` (the epoch and where it ends here) and no records, so it truncates there.
If fewer than `min_bytes` are ready the request parks until an append wakes it or `max_wait`
passes; nothing polls, and a wake-up re-reads only the partitions that changed. Batches are read from the page cache and sent as stored.

Closest replica (KIP-392): with `replica.selector.class` set to Kafka's RackAwareReplicaSelector,
a leader answers a consumer whose `rack_id` (v11+) matches another in-sync replica's broker.rack
with `preferred_read_replica` and no records; the consumer then fetches from that follower, which
serves it up to its own high watermark.

Fetch sessions (KIP-227, v7+, replica/fetch_sessions.py): a full fetch with epoch 0 gets a session
id when the cache has a slot (else 0: the client keeps sending full fetches); an incremental fetch
names only what changed and is answered with only the partitions that have news. An unknown
session gets FETCH_SESSION_ID_NOT_FOUND, a wrong epoch INVALID_FETCH_SESSION_EPOCH, a session
used across the v13 topic-id change FETCH_SESSION_TOPIC_ID_ERROR. v13+ names topics by id.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from odradek.security.acl import CLUSTER_NAME, Operation, ResourceType
from odradek.handlers.context import RequestContext
from odradek.security.quotas import CONSUMER_BYTE_RATE, user_of
from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.protocol.fetch_response import FetchAnswer, FetchedPartition
from odradek.protocol.topic_partition import TopicPartition
from odradek.replica.fetch_sessions import FINAL_EPOCH, INITIAL_EPOCH, CachedPartition, next_epoch

API_KEY = 1
MIN_VERSION = 4
MAX_VERSION = 17

log = logging.getLogger(__name__)


async def handle(ctx: RequestContext, request):
    session_id = getattr(request, "session_id", 0)
    session_epoch = getattr(request, "session_epoch", FINAL_EPOCH)
    replicas = ctx.services.replicas
    by_id = ctx.api_version >= 13
    replica_id = replica_id_of(request)
    sessions = ctx.services.fetch_sessions
    named = _named_partitions(request, by_id)
    session = None
    if session_epoch in (INITIAL_EPOCH, FINAL_EPOCH):  # a full fetch; it ends the session it names
        if session_id != 0:
            sessions.remove(session_id)
    else:
        session = sessions.get(session_id)
        if session is None:
            return _session_error(ErrorCode.fetch_session_id_not_found)
        if session.epoch != session_epoch:
            return _session_error(ErrorCode.invalid_fetch_session_epoch)
        if session.uses_topic_ids != by_id:
            return _session_error(ErrorCode.fetch_session_topic_id_error)
        session.update(named, _forgotten_partitions(request, by_id))
        if session.partitions:
            sessions.touch(session)
            session.epoch = next_epoch(session.epoch)
            named = [(key, cached.request) for (key, _index), cached in session.partitions.items()]
        else:  # it forgot everything: answered without a session
            sessions.remove(session.id)
            session = None
    wanted = _wanted_partitions(ctx, named, by_id, replica_id)
    selector = ctx.services.config["replica.selector.class"]
    rack_aware = bool(selector) and selector.endswith("RackAwareReplicaSelector")
    client_rack = (getattr(request, "rack_id", "") or "") if rack_aware else ""
    max_wait_s = max(request.max_wait.total_seconds(), 0.0)
    min_bytes = request.min_bytes
    max_bytes = getattr(request, "max_bytes", 0x7FFFFFFF)
    quotas = ctx.services.quotas
    if replica_id < 0 and quotas.fetch_enabled:
        # No bigger than the consumer's quota allows at once, so one fetch cannot earn a throttle
        # that stalls the consumer (Kafka caps it the same way).
        allowed = quotas.max_in_window(CONSUMER_BYTE_RATE, user_of(ctx.principal), ctx.client_id or "")
        if allowed < max_bytes:
            max_bytes = int(allowed)
            min_bytes = min(min_bytes, max_bytes)
    read_committed = getattr(request, "isolation_level", 0) == 1
    deadline = time.monotonic() + max_wait_s  # (asyncio.get_running_loop() costs a getpid() call)

    changed = None  # after a wake-up: the partitions to read again (the others have nothing new)
    while True:
        if changed is None:
            results, total = _read_all(ctx, wanted, max_bytes, replica_id, client_rack, read_committed)
        else:
            again = [index for index, entry in enumerate(wanted) if entry[0] in changed]
            kept = total - sum(len(results[index][1].records) for index in again)
            fresh, _ = _read_all(ctx, [wanted[index] for index in again], max_bytes, replica_id, client_rack,
                                 read_committed, already=kept)
            for index, entry in zip(again, fresh):
                results[index] = entry
            total = sum(len(fetched.records) for _key, fetched in results)
        remaining = deadline - time.monotonic()
        if (
            total >= min_bytes
            or not wanted  # nothing asked for, nothing to wait for (Kafka answers at once too)
            or remaining <= 0
            or replicas.waiters.closed
            or any(_has_news_besides_records(fetched) for _key, fetched in results)
        ):
            break
        changed = await replicas.wait_for_append([entry[0] for entry in wanted if entry[0] is not None], remaining)

    stats = replicas.topic_stats
    follower = replica_id >= 0
    for (tp, _topic, _partition, _error), (_key, fetched) in zip(wanted, results):
        if tp is not None:
            if fetched.records:
                stats.fetched(tp.topic, len(fetched.records), follower=follower)
            if fetched.error_code:  # a partition not hosted here has no log start offset
                stats.fetch_failed(tp.topic if fetched.log_start_offset >= 0 else None)
    if session is not None:
        results = [(key, fetched) for key, fetched in results if session.must_answer(
            (key, fetched.index), fetched.high_watermark, fetched.log_start_offset,
            has_records=len(fetched.records) > 0, other_news=_has_news_besides_records(fetched))]
        answered_session = session.id
    elif session_epoch == INITIAL_EPOCH and ctx.api_version >= 7:
        cached = OrderedDict(((key, partition.partition),
                              CachedPartition(partition, fetched.high_watermark, fetched.log_start_offset))
                             for (key, partition), (_key, fetched) in zip(named, results))
        answered_session = sessions.create(replica_id >= 0, by_id, cached)
    else:
        answered_session = 0
    return _response(results, answered_session)


def replica_id_of(request) -> int:
    """The fetching broker's id (from v15 in replica_state), -1 for a consumer."""
    state = getattr(request, "replica_state", None)
    return state.replica_id if state is not None else getattr(request, "replica_id", -1)


def _has_news_besides_records(fetched: FetchedPartition) -> bool:
    """An error, a diverging epoch or another replica to read from: answered at once, and in an
    incremental answer even without records."""
    return bool(fetched.error_code) or fetched.diverging_epoch is not None or fetched.preferred_read_replica >= 0


def _named_partitions(request, by_id: bool) -> list[tuple[object, object]]:
    """(topic id or name, kio FetchPartition) for each partition the request names."""
    return [(topic.topic_id if by_id else topic.topic, partition) for topic in request.topics for partition in topic.partitions]


def _forgotten_partitions(request, by_id: bool) -> list[tuple[object, int]]:
    return [(topic.topic_id if by_id else topic.topic, index)
            for topic in getattr(request, "forgotten_topics_data", ()) for index in topic.partitions]


def _wanted_partitions(ctx: RequestContext, named, by_id: bool, replica_id: int = -1):
    """(TopicPartition | None, topic key, partition request, error) for each named partition.
    A follower needs CLUSTER_ACTION on the cluster, a consumer READ on each topic (Kafka's checks,
    made at every fetch, also for a session's partitions): otherwise TOPIC_AUTHORIZATION_FAILED."""
    image = ctx.image
    wanted = []
    follower_denied = replica_id >= 0 and not ctx.allowed(Operation.CLUSTER_ACTION, ResourceType.CLUSTER, CLUSTER_NAME)
    topics: dict = {}  # key -> (name, error for all its partitions)
    for key, partition in named:
        found = topics.get(key)
        if found is None:
            if by_id:
                record = image.topic_by_id(key)
                name = record.name if record is not None else None
                missing = ErrorCode.unknown_topic_id
            else:
                name, missing = key, ErrorCode.unknown_topic_or_partition
            if name is None:
                found = (None, missing)
            elif follower_denied or (replica_id < 0 and not ctx.allowed(Operation.READ, ResourceType.TOPIC, name)):
                found = (None, ErrorCode.topic_authorization_failed)
            else:
                found = (name, None)
            topics[key] = found
        name, error = found
        if error is not None:
            wanted.append((None, key, partition, error))
        else:
            wanted.append((TopicPartition(name, partition.partition), key, partition, None))
    return wanted


def _read_all(ctx: RequestContext, wanted, max_bytes: int, replica_id: int, client_rack: str = "",
              read_committed: bool = False, already: int = 0):
    """One pass over the requested partitions (`already` bytes of the answer read before);
    returns ([(topic key, FetchedPartition)], bytes). A partition's offsets are the ones it had
    when read, as in Kafka's answer; -1 where it is not hosted here."""
    replicas = ctx.services.replicas
    no_aborted = () if read_committed else None  # None: the field is null for read_uncommitted
    results = []
    total = already
    for tp, key, partition, error in wanted:
        index = partition.partition
        if error is not None:
            results.append((key, FetchedPartition(index, error, -1, -1, -1, no_aborted, -1, b"", None)))
            continue
        try:
            leader_epoch = getattr(partition, "current_leader_epoch", -1)
            budget = min(partition.partition_max_bytes, max_bytes - total)
            if budget <= 0 and total > 0:
                budget = 0
            last_fetched_epoch = getattr(partition, "last_fetched_epoch", -1)
            aborted = no_aborted
            preferred = -1
            first = total == 0  # only the first partition with data may exceed the limits (KIP-74)
            if replica_id >= 0:
                # First: the follower's fetch offset may move the high watermark.
                state, records, diverging = replicas.fetch_for_follower(
                    tp, replica_id, partition.fetch_offset, max(budget, 1), leader_epoch, last_fetched_epoch, first
                )
                stable = state.last_stable_offset
            else:
                state = replicas.readable_partition(tp, leader_epoch, allow_follower=ctx.api_version >= 11)
                stable = state.last_stable_offset
                records = b""
                diverging = state.diverging_epoch(last_fetched_epoch, partition.fetch_offset)
                preferred = _closer_replica(ctx, state, client_rack) if client_rack and state.is_leader else -1
                if preferred >= 0:  # it reads there, so nothing else is said here
                    diverging = None
                elif diverging is None and (budget > 0 or total == 0):
                    if read_committed:
                        records, aborted = state.read_committed(partition.fetch_offset, max(budget, 1), first, stable)
                    else:
                        records = state.read(partition.fetch_offset, max(budget, 1), first)
            total += len(records)
            results.append((key, FetchedPartition(index, ErrorCode.none, state.high_watermark, stable,
                                                  state.log_start_offset, aborted, preferred, records, diverging)))
        except KafkaError as failure:
            state = replicas.partition(tp)
            offsets = (state.high_watermark, state.last_stable_offset, state.log_start_offset) if state is not None \
                else (-1, -1, -1)
            results.append((key, FetchedPartition(index, failure.code, *offsets, no_aborted, -1, b"", None)))
        except Exception:
            log.exception("unexpected error reading %s", tp)
            results.append((key, FetchedPartition(index, ErrorCode.unknown_server_error, -1, -1, -1, no_aborted, -1,
                                                  b"", None)))
    return results, total


def _closer_replica(ctx: RequestContext, state, client_rack: str) -> int:
    """An in-sync follower in the consumer's rack when the leader is not in it (-1: read here)."""
    brokers = ctx.image.brokers
    leader = brokers.get(state.node_id)
    if leader is not None and leader.rack == client_rack:
        return -1
    for replica in state.replicas:
        broker = brokers.get(replica)
        if replica != state.node_id and replica in state.isr and broker is not None and broker.rack == client_rack:
            return replica
    return -1



def _response(results, session_id: int = 0) -> FetchAnswer:
    topics: dict = {}
    for key, fetched in results:
        partitions = topics.get(key)
        if partitions is None:
            partitions = topics[key] = []
        partitions.append(fetched)
    return FetchAnswer(0, ErrorCode.none, session_id, list(topics.items()))


def _session_error(code: ErrorCode) -> FetchAnswer:
    return FetchAnswer(0, code, 0, [])
