"""Client quotas as an operator sets them and as clients feel them.

Quotas are set with AlterClientQuotas (what `kafka-configs --entity-type users|clients|ips` sends)
and read back with DescribeClientQuotas; they survive a restart. A producer or consumer over its
byte rate is slowed to it: librdkafka reports the broker's throttle time, and every message still
arrives, in order. A client whose requests take more than its `request_percentage` of the broker's
time is throttled, and its connection is not read until the throttle time has passed. An address
over its `connection_creation_rate` has new connections closed. A client over its
`controller_mutation_rate` (partitions created or deleted a second) gets THROTTLING_QUOTA_EXCEEDED
for the topics past it from the request versions that know that error, and is only told to wait by
older ones (librdkafka's). Bad quota requests get Kafka's INVALID_REQUEST with Kafka's message.

The brokers here measure over `quota.window.num=2` one-second windows, so that a client's
allowed first burst (all but one window's worth) is one second of its quota.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.alter_client_quotas.v1.request import AlterClientQuotasRequest
from kio.schema.alter_client_quotas.v1.request import EntityData, EntryData, OpData
from kio.schema.describe_client_quotas.v1.request import ComponentData, DescribeClientQuotasRequest
from kio.schema.create_partitions.v3 import request as create_partitions_v3
from kio.schema.create_topics.v7 import request as create_topics_v7
from kio.schema.delete_topics.v6 import request as delete_topics_v6
from kio.schema.metadata.v12.request import MetadataRequest
from kio.static.primitive import f64, i8, i16, i32

from odradek.protocol.errors import ErrorCode

from .wire import WireClient

SMALL_WINDOW = {"quota.window.num": "2", "quota.window.size.seconds": "1"}
EXACT, DEFAULT, SPECIFIED = 0, 1, 2


def alter(wire: WireClient, entity: dict[str, str | None], ops: dict[str, float | None],
          validate_only: bool = False) -> tuple[ErrorCode, str | None]:
    """Set (a value) or remove (None) quotas of one entity; its result's error and message."""
    entry = EntryData(
        entity=tuple(EntityData(entity_type=kind, entity_name=name) for kind, name in entity.items()),
        ops=tuple(OpData(key=key, value=f64(float(value or 0)), remove=value is None) for key, value in ops.items()),
    )
    answer = wire.request(49, 1, AlterClientQuotasRequest(entries=(entry,), validate_only=validate_only))
    (result,) = answer.entries
    return result.error_code, result.error_message


def describe(wire: WireClient, components: list[tuple[str, int, str | None]] = (), strict: bool = False):
    """The quotas DescribeClientQuotas lists: {entity as sorted (type, name) pairs: {key: value}}."""
    answer = wire.request(48, 1, DescribeClientQuotasRequest(
        components=tuple(ComponentData(entity_type=kind, match_type=i8(match_type), match=match)
                         for kind, match_type, match in components),
        strict=strict))
    assert answer.error_code == ErrorCode.none, answer
    return {tuple(sorted((e.entity_type, e.entity_name) for e in entry.entity)):
            {value.key: float(value.value) for value in entry.values} for entry in answer.entries}


def describe_error(wire: WireClient, components: list[tuple[str, int, str | None]]) -> tuple[ErrorCode, str | None]:
    answer = wire.request(48, 1, DescribeClientQuotasRequest(
        components=tuple(ComponentData(entity_type=kind, match_type=i8(match_type), match=match)
                         for kind, match_type, match in components), strict=False))
    return answer.error_code, answer.error_message


def test_quotas_are_set_described_removed_and_kept_across_a_restart(start_broker):
    broker = start_broker()
    with WireClient(broker.bootstrap_servers) as wire:
        assert alter(wire, {"user": "alice"}, {"producer_byte_rate": 1048576, "consumer_byte_rate": 2097152}) \
            == (ErrorCode.none, None)
        assert alter(wire, {"client-id": None}, {"request_percentage": 50.5}) == (ErrorCode.none, None)
        assert alter(wire, {"user": "alice", "client-id": "app"}, {"producer_byte_rate": 4096}) == (ErrorCode.none, None)
        assert alter(wire, {"ip": None}, {"connection_creation_rate": 100}) == (ErrorCode.none, None)
        # validate_only checks and stores nothing
        assert alter(wire, {"user": "bob"}, {"producer_byte_rate": 1}, validate_only=True) == (ErrorCode.none, None)

        everything = {
            (("user", "alice"),): {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0},
            (("client-id", None),): {"request_percentage": 50.5},
            (("client-id", "app"), ("user", "alice")): {"producer_byte_rate": 4096.0},
            (("ip", None),): {"connection_creation_rate": 100.0},
        }
        assert describe(wire) == everything
        assert describe(wire, [("user", EXACT, "alice")], strict=True) == {
            (("user", "alice"),): everything[(("user", "alice"),)]}
        assert describe(wire, [("user", SPECIFIED, None)]) == {
            key: value for key, value in everything.items() if key[-1][0] == "user"}
        assert describe(wire, [("client-id", DEFAULT, None)]) == {(("client-id", None),): {"request_percentage": 50.5}}
        assert describe(wire, [("user", EXACT, "nobody")]) == {}

        assert alter(wire, {"user": "alice"}, {"producer_byte_rate": None}) == (ErrorCode.none, None)
        assert alter(wire, {"ip": None}, {"connection_creation_rate": None}) == (ErrorCode.none, None)
        del everything[(("ip", None),)]
        del everything[(("user", "alice"),)]["producer_byte_rate"]
        assert describe(wire) == everything

    assert broker.stop() == 0
    broker.start()
    with WireClient(broker.bootstrap_servers) as wire:
        assert describe(wire) == everything


def test_bad_quota_requests_get_kafkas_errors(broker):
    refused = [
        ({"user": "alice"}, {"unknown_quota": 5}, "Invalid configuration key unknown_quota"),
        ({"user": "alice"}, {"producer_byte_rate": 1.5}, "producer_byte_rate cannot be a fractional value."),
        ({"user": "alice"}, {"consumer_byte_rate": 0}, "Quota consumer_byte_rate must be greater than 0"),
        ({"client-id": "app"}, {"request_percentage": -1}, "Quota request_percentage must be greater than 0"),
        ({"user": "alice"}, {"connection_creation_rate": 5}, "Invalid configuration key connection_creation_rate"),
        ({"ip": "127.0.0.1"}, {"producer_byte_rate": 5}, "Invalid configuration key producer_byte_rate"),
        ({"ip": "not an address"}, {"connection_creation_rate": 5}, "not an address is not a valid IP or resolvable host."),
        ({"ip": "127.0.0.1", "user": "alice"}, {"connection_creation_rate": 5}, "Invalid quota entity combination"),
        ({"user": ""}, {"producer_byte_rate": 5}, "Empty user not supported"),
        ({"group": "g"}, {"producer_byte_rate": 5}, "Unhandled client quota entity type: group"),
        ({}, {"producer_byte_rate": 5}, "Invalid empty client quota entity"),
    ]
    with WireClient(broker.bootstrap_servers) as wire:
        for entity, ops, message in refused:
            error, said = alter(wire, entity, ops)
            assert error == ErrorCode.invalid_request and message in (said or ""), (entity, ops, said)
        assert describe(wire) == {}

        # an entity named twice in one request is refused whole
        twice = EntryData(entity=(EntityData(entity_type="user", entity_name="alice"),),
                          ops=(OpData(key="producer_byte_rate", value=f64(1024.0), remove=False),))
        answer = wire.request(49, 1, AlterClientQuotasRequest(entries=(twice, twice), validate_only=False))
        assert [entry.error_code for entry in answer.entries] == [ErrorCode.invalid_request] * 2
        assert describe(wire) == {}

        # a type given twice, once as the default and once by name (found by tests/fuzz: a traceback)
        both = EntryData(entity=(EntityData(entity_type="user", entity_name="alice"),
                                 EntityData(entity_type="user", entity_name=None)),
                         ops=(OpData(key="producer_byte_rate", value=f64(1024.0), remove=False),))
        (result,) = wire.request(49, 1, AlterClientQuotasRequest(entries=(both,), validate_only=False)).entries
        assert result.error_code == ErrorCode.invalid_request, result
        assert "duplicate entity entry user" in (result.error_message or ""), result
        assert describe(wire) == {}
        assert "Traceback" not in broker.output()

        assert describe_error(wire, [("group", EXACT, "g")]) == (ErrorCode.unsupported_version, "Unsupported entity type group")
        assert describe_error(wire, [("user", EXACT, None)])[0] == ErrorCode.invalid_request
        assert describe_error(wire, [("user", DEFAULT, "alice")])[0] == ErrorCode.invalid_request
        assert describe_error(wire, [("user", 7, None)]) == (ErrorCode.invalid_request, "Unknown match type 7")
        assert describe_error(wire, [("user", SPECIFIED, None), ("user", EXACT, "a")])[0] == ErrorCode.invalid_request
        assert describe_error(wire, [("ip", SPECIFIED, None), ("user", SPECIFIED, None)])[0] == ErrorCode.invalid_request
        assert wire.request(3, 12, MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                                   include_topic_authorized_operations=False)).brokers


def _throttle_seen(statistics: list[dict]) -> int:
    """The largest broker throttle time librdkafka reported (its per-broker `throttle` window)."""
    return max((broker["throttle"]["max"] for stats in statistics for broker in stats["brokers"].values()
                if broker["nodeid"] >= 0), default=0)


def _produce(bootstrap: str, client_id: str, topic: str, count: int, size: int) -> tuple[float, list[dict], list]:
    statistics: list[dict] = []
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
        "statistics.interval.ms": 500, "stats_cb": lambda raw: statistics.append(json.loads(raw)),
    })
    errors = []
    started = time.monotonic()
    for index in range(count):
        while True:
            try:
                producer.produce(topic, key=str(index).encode(), value=bytes(size),
                                 on_delivery=lambda error, message: errors.append(error) if error else None)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0
    elapsed = time.monotonic() - started
    time.sleep(0.6)  # one more statistics report, with the last throttle in it
    producer.poll(0)
    return elapsed, statistics, errors


class SteadyProducer(threading.Thread):
    """Offers records as fast as librdkafka takes them for `seconds`, and keeps librdkafka's
    statistics (bytes sent to the broker, throttle times) every 250 ms. Requests of at most 64 KiB
    (Java's producer sends 16 KiB batches): librdkafka's default of 1 MB would make each request a
    whole second of a 1 MiB/s quota, too coarse to measure a rate over a few seconds."""

    def __init__(self, bootstrap: str, client_id: str, seconds: float) -> None:
        super().__init__()
        self.statistics: list[tuple[float, dict]] = []
        self.delivered = 0
        self.produced = 0
        self.errors: list = []
        self.seconds = seconds
        self.producer = confluent_kafka.Producer({
            "bootstrap.servers": bootstrap, "client.id": client_id, "linger.ms": 5,
            "queue.buffering.max.kbytes": 2048, "batch.size": 65536, "statistics.interval.ms": 250,
            "stats_cb": lambda raw: self.statistics.append((time.monotonic(), json.loads(raw))),
        })
        self.topic = f"steady-{client_id}"

    def _delivered(self, error, _message) -> None:
        if error is None:
            self.delivered += 1
        else:
            self.errors.append(error)

    def run(self) -> None:
        self.started = time.monotonic()
        while time.monotonic() < self.started + self.seconds:
            try:
                self.producer.produce(self.topic, value=bytes(1000), on_delivery=self._delivered)
                self.produced += 1
            except BufferError:
                self.producer.poll(0.01)
            self.producer.poll(0)
        self.producer.flush(60)
        self.producer.poll(0.5)
        self.producer = None  # closed: librdkafka stops reconnecting once the broker is gone

    def rate_between(self, start_s: float, end_s: float) -> float:
        """Bytes a second sent to the broker (librdkafka's txbytes: whole requests, what the quota
        counts) between two moments, in seconds after the start."""
        def sent(at: float) -> tuple[float, int]:
            when, stats = min(self.statistics, key=lambda entry: abs(entry[0] - (self.started + at)))
            return when, sum(b["txbytes"] for b in stats["brokers"].values() if b["nodeid"] >= 0)

        (begin, first), (end, last) = sent(start_s), sent(end_s)
        return (last - first) / (end - begin)


def test_a_producer_over_its_byte_rate_is_held_to_it_and_others_are_not(start_broker):
    """1 MiB/s for client id 'slow': once its first second's burst is spent, what it sends is within
    10% of its quota, while a producer with another client id on the same broker at the same time
    goes many times faster. librdkafka reports the throttle for the first only, and every record of
    both is delivered."""
    quota = 1024 * 1024
    broker = start_broker(**SMALL_WINDOW)
    with WireClient(broker.bootstrap_servers) as wire:
        assert alter(wire, {"client-id": "slow"}, {"producer_byte_rate": quota}) == (ErrorCode.none, None)

    slow = SteadyProducer(broker.bootstrap_servers, "slow", 10)
    free = SteadyProducer(broker.bootstrap_servers, "free", 10)
    slow.start(), free.start()
    slow.join(90), free.join(90)
    held = slow.rate_between(4, 10)
    assert 0.9 * quota <= held <= 1.1 * quota, f"{held / 1024:.0f} KiB/s against a quota of {quota // 1024} KiB/s"
    assert free.rate_between(4, 10) > 5 * quota
    assert _throttle_seen([stats for _, stats in slow.statistics]) > 0
    assert _throttle_seen([stats for _, stats in free.statistics]) == 0
    for producer in (slow, free):
        assert producer.errors == [] and producer.delivered == producer.produced


def test_a_consumer_over_its_byte_rate_is_slowed_to_it(start_broker):
    """A consumer with 512 KiB/s reads 2 MiB in order, in no less than the three seconds its quota
    allows beyond its first second, and librdkafka reports the throttle."""
    broker = start_broker(**SMALL_WINDOW)
    _elapsed, _statistics, errors = _produce(broker.bootstrap_servers, "writer", "quota-fetch", 2048, 1024)
    assert errors == []
    with WireClient(broker.bootstrap_servers) as wire:
        assert alter(wire, {"user": None, "client-id": "slow-reader"}, {"consumer_byte_rate": 512 * 1024}) \
            == (ErrorCode.none, None)

    statistics: list[dict] = []
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": broker.bootstrap_servers, "group.id": "slow", "client.id": "slow-reader",
        "auto.offset.reset": "earliest", "statistics.interval.ms": 500,
        "stats_cb": lambda raw: statistics.append(json.loads(raw)),
    })
    consumer.subscribe(["quota-fetch"])
    keys = []
    first = None
    deadline = time.monotonic() + 60
    while len(keys) < 2048 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            first = first or time.monotonic()
            keys.append(int(message.key()))
    elapsed = time.monotonic() - (first or time.monotonic())
    consumer.poll(0.6)
    consumer.close()
    assert keys == list(range(2048))
    assert elapsed >= 2.0, f"2 MiB at 512 KiB/s arrived in {elapsed:.2f} s"
    assert _throttle_seen(statistics) > 0


def test_a_client_over_its_request_percentage_is_throttled_and_muted(start_broker):
    """request_percentage=0.01 for every user (0.1 ms of the broker's time a second): the first
    requests are enough to be throttled for up to one window (a request throttle is bounded by it),
    and the connection's next answer waits for the throttle time."""
    broker = start_broker(**SMALL_WINDOW)
    metadata = MetadataRequest(topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    with WireClient(broker.bootstrap_servers) as wire:
        assert alter(wire, {"user": None}, {"request_percentage": 0.01}) == (ErrorCode.none, None)
        throttle_ms = 0
        for _ in range(100):
            throttle_ms = wire.request(3, 12, metadata).throttle_time.total_seconds() * 1000
            if throttle_ms >= 200:
                break
        assert 200 <= throttle_ms <= 1000
        started = time.monotonic()
        wire.request(3, 12, metadata)
        assert time.monotonic() - started >= throttle_ms / 1000 - 0.05

        assert alter(wire, {"user": None}, {"request_percentage": None}) == (ErrorCode.none, None)
        time.sleep(1.0)
        for _ in range(200):
            assert wire.request(3, 12, metadata).throttle_time.total_seconds() == 0


def test_connections_over_an_addresss_creation_rate_are_closed(start_broker):
    """connection_creation_rate=2 for 127.0.0.1: of eight connections opened at once, those beyond
    the rate are closed by the broker; without the quota all eight are served."""
    broker = start_broker(**SMALL_WINDOW)
    metadata = MetadataRequest(topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    with WireClient(broker.bootstrap_servers) as admin:
        assert alter(admin, {"ip": "127.0.0.1"}, {"connection_creation_rate": 2}) == (ErrorCode.none, None)
        clients = [WireClient(broker.bootstrap_servers) for _ in range(8)]
        served = 0
        for client in clients:
            try:
                client.request(3, 12, metadata)
                served += 1
            except (ConnectionError, OSError):
                pass
            client.close()
        assert 1 <= served <= 4, served

        assert alter(admin, {"ip": "127.0.0.1"}, {"connection_creation_rate": None}) == (ErrorCode.none, None)
        time.sleep(1.0)
        clients = [WireClient(broker.bootstrap_servers) for _ in range(8)]
        assert all(client.request(3, 12, metadata).brokers for client in clients)
        for client in clients:
            client.close()


MUTATION_WINDOW = {"controller.quota.window.num": "2", "controller.quota.window.size.seconds": "1"}


def _create_v7(wire: WireClient, topics: dict[str, int]):
    """CreateTopics v7 (the Java admin client's): (results by name, throttle ms)."""
    answer = wire.request(19, 7, create_topics_v7.CreateTopicsRequest(
        topics=tuple(create_topics_v7.CreatableTopic(name=name, num_partitions=i32(count), replication_factor=i16(-1),
                                                     assignments=(), configs=()) for name, count in topics.items()),
        timeout=timedelta(seconds=10)))
    return {t.name: (t.error_code, t.error_message) for t in answer.topics}, answer.throttle_time.total_seconds() * 1000


def _delete_v6(wire: WireClient, name: str):
    answer = wire.request(20, 6, delete_topics_v6.DeleteTopicsRequest(
        topics=(delete_topics_v6.DeleteTopicState(name=name, topic_id=None),), timeout=timedelta(seconds=10)))
    return answer.responses[0].error_code, answer.throttle_time.total_seconds() * 1000


def test_a_client_over_its_controller_mutation_rate_gets_throttling_quota_exceeded(start_broker):
    """controller_mutation_rate=5 with a bucket of 2 s: 10 partitions at once. Of three 6-partition
    topics the first two go through (the second finds 4 tokens left), the third is refused with
    how long to wait; the connection is then muted that long, and afterwards the topic is created."""
    broker = start_broker(**MUTATION_WINDOW)
    exceeded = (ErrorCode.throttling_quota_exceeded, "The throttling quota has been exceeded.")
    with WireClient(broker.bootstrap_servers) as wire:
        assert alter(wire, {"client-id": "odradek-wire"}, {"controller_mutation_rate": 5}) == (ErrorCode.none, None)
        results, throttle_ms = _create_v7(wire, {"m1": 6, "m2": 6, "m3": 6})
        assert results == {"m1": (ErrorCode.none, None), "m2": (ErrorCode.none, None), "m3": exceeded}
        assert 300 <= throttle_ms <= 400  # 2 tokens short at 5 a second
        started = time.monotonic()
        results, _ = _create_v7(wire, {"m3": 6})  # answered only after the wait: then there are tokens
        assert time.monotonic() - started >= throttle_ms / 1000 - 0.05
        assert results == {"m3": (ErrorCode.none, None)}

        # Adding partitions counts too: 6 partitions short now, so it is refused and changes nothing.
        grow = wire.request(37, 3, create_partitions_v3.CreatePartitionsRequest(
            topics=(create_partitions_v3.CreatePartitionsTopic(name="m2", count=i32(8), assignments=None),),
            timeout=timedelta(seconds=10), validate_only=False))
        assert (grow.results[0].error_code, grow.results[0].error_message) == exceeded
        assert 1100 <= grow.throttle_time.total_seconds() * 1000 <= 1200
        # So does deleting: answered after the wait, with the bucket back at 0, m1 goes and takes
        # it 6 below again; at once, m2 may not go.
        started = time.monotonic()
        assert _delete_v6(wire, "m1") == (ErrorCode.none, 0)
        assert time.monotonic() - started >= 1.05
        assert _delete_v6(wire, "m2")[0] == ErrorCode.throttling_quota_exceeded
        topics = wire.request(3, 12, MetadataRequest(
            topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False)).topics
        assert {t.name: len(t.partitions) for t in topics if t.name.startswith("m")} == {"m2": 6, "m3": 6}

        # Other clients are not held back.
        assert alter(wire, {"client-id": "odradek-wire"}, {"controller_mutation_rate": None}) == (ErrorCode.none, None)
        results, throttle_ms = _create_v7(wire, {"free": 50})
        assert results == {"free": (ErrorCode.none, None)} and throttle_ms == 0


def test_librdkafkas_admin_client_over_its_controller_mutation_rate_is_slowed_not_refused(start_broker):
    """librdkafka sends CreateTopics v4, before THROTTLING_QUOTA_EXCEEDED existed: every topic is
    created, and the client is told to wait, its connection muted meanwhile (Kafka's permissive
    quota)."""
    broker = start_broker(**MUTATION_WINDOW)
    with WireClient(broker.bootstrap_servers) as wire:
        assert alter(wire, {"client-id": "provisioner"}, {"controller_mutation_rate": 5}) == (ErrorCode.none, None)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers, "client.id": "provisioner"})
    admin.create_topics([NewTopic("p1", 10, 1)])["p1"].result(10)  # the whole bucket
    admin.create_topics([NewTopic("p2", 10, 1)])["p2"].result(10)  # 10 short: 2 s to wait
    started = time.monotonic()
    admin.create_topics([NewTopic("p3", 1, 1)])["p3"].result(10)
    assert time.monotonic() - started >= 1.5
    assert {"p1", "p2", "p3"} <= set(admin.list_topics(timeout=10).topics)
