"""Client quota arithmetic: Kafka's precedence of quota entities, its Rate over samples, and the
throttle time it derives, checked with a clock the test moves."""

from __future__ import annotations

import pytest

from odradek.protocol.errors import ErrorCode, KafkaError
from odradek.security.quotas import (
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    ClientQuotas,
    QuotaError,
    Rate,
    check_value,
    entity_of,
    matches,
    stored_text,
)


class FakeClock:
    def __init__(self) -> None:
        self.ms = 1_000_000.0

    def __call__(self) -> float:
        return self.ms


def quotas(entries: dict, window_num: int = 11) -> tuple[ClientQuotas, FakeClock]:
    clock = FakeClock()
    q = ClientQuotas(window_num, 1, now_ms=clock)
    q.configure({entity_of(entity): values for entity, values in entries.items()})
    return q, clock


LEVELS = [
    ((("user", "alice"), ("client-id", "app")), ("alice", "app")),
    ((("user", "alice"), ("client-id", None)), ("alice", "app")),
    ((("user", "alice"),), ("alice", "")),
    ((("user", None), ("client-id", "app")), ("alice", "app")),
    ((("user", None), ("client-id", None)), ("alice", "app")),
    ((("user", None),), ("alice", "")),
    ((("client-id", "app"),), ("", "app")),
    ((("client-id", None),), ("", "app")),
]


def test_the_most_specific_entity_wins_in_kafkas_order_and_says_who_shares_the_budget():
    entries = {entity: {PRODUCER_BYTE_RATE: float(1000 + index)} for index, (entity, _) in enumerate(LEVELS)}
    for index, (entity, shares) in enumerate(LEVELS):
        q, _ = quotas(entries)
        assert q.bound(PRODUCER_BYTE_RATE, "alice", "app") == (shares, 1000.0 + index), entity
        del entries[entity]
    q, _ = quotas(entries)
    assert q.bound(PRODUCER_BYTE_RATE, "alice", "app") is None
    assert not q.produce_enabled


def test_each_key_is_resolved_on_its_own():
    q, _ = quotas({(("user", "alice"),): {PRODUCER_BYTE_RATE: 10.0}, (("client-id", None),): {CONSUMER_BYTE_RATE: 20.0}})
    assert q.bound(PRODUCER_BYTE_RATE, "alice", "app") == (("alice", ""), 10.0)
    assert q.bound(CONSUMER_BYTE_RATE, "alice", "app") == (("", "app"), 20.0)
    assert q.bound(PRODUCER_BYTE_RATE, "bob", "app") is None
    assert q.produce_enabled and q.fetch_enabled and not q.request_enabled


def test_a_burst_within_all_but_one_window_is_free_and_beyond_it_is_throttled_by_kafkas_formula():
    q, clock = quotas({(("user", "alice"),): {PRODUCER_BYTE_RATE: 1000.0}})
    # 11 samples: the rate is measured over at least 10 s, so 10,000 bytes at once is within 1000/s
    assert q.record(PRODUCER_BYTE_RATE, "alice", "a", 10_000) == 0
    # 1,000 more: 11,000 / 10 s = 1100/s; the wait is (1100 - 1000) / 1000 * 10 s = 1 s
    assert q.record(PRODUCER_BYTE_RATE, "alice", "a", 1_000) == 1000
    # the budget is the user's: another client id of alice's is over it too
    assert q.record(PRODUCER_BYTE_RATE, "alice", "b", 0) == 1000
    clock.ms += 11_000  # every sample has expired
    assert q.record(PRODUCER_BYTE_RATE, "alice", "a", 100) == 0


def test_unrecorded_bytes_no_longer_count():
    q, _ = quotas({(("client-id", None),): {CONSUMER_BYTE_RATE: 100.0}}, window_num=2)
    assert q.record(CONSUMER_BYTE_RATE, "u", "c", 300) == 2000  # (300 - 100) / 100 * 1 s
    q.unrecord(CONSUMER_BYTE_RATE, "u", "c", 300)
    assert q.record(CONSUMER_BYTE_RATE, "u", "c", 100) == 0
    assert q.max_in_window(CONSUMER_BYTE_RATE, "u", "c") == 100.0
    assert q.max_in_window(PRODUCER_BYTE_RATE, "u", "c") == float("inf")


def test_request_and_connection_throttles_are_at_most_one_window():
    q, _ = quotas({(("user", None),): {REQUEST_PERCENTAGE: 1.0}, (("ip", None),): {"connection_creation_rate": 1.0}},
                  window_num=2)
    assert q.request_time("u", "c", 0.005) == 0  # 0.5 % of one second
    assert q.request_time("u", "c", 5.0) == 1000
    assert q.connection_throttle("10.0.0.1") == 0
    assert q.connection_throttle("10.0.0.1") == 1000
    assert q.connection_throttle("10.0.0.2") == 0  # each address has its own budget under the default


def test_usage_of_a_client_gone_for_an_hour_is_forgotten():
    q, clock = quotas({(("client-id", None),): {PRODUCER_BYTE_RATE: 100.0}})
    for client in range(100):
        q.record(PRODUCER_BYTE_RATE, "u", f"client-{client}", 1)
    clock.ms += 3_600_001
    q.record(PRODUCER_BYTE_RATE, "u", "fresh", 1)
    assert len(q._usage) == 1


def test_rate_counts_all_but_one_window_at_least():
    rate, now = Rate(samples=3, window_ms=1000), 0.0
    rate.record(200, now)
    assert rate.window_size_ms(now) == 2000 and rate.per_second(now) == 100
    rate.record(200, now + 2500)  # a new window; the oldest began 2.5 s ago
    assert rate.window_size_ms(now + 2500) == 2500 and rate.per_second(now + 2500) == 160
    # the first window expired: 200 over 0.5 s since the second began, plus the two windows it lacks
    assert rate.per_second(now + 3000) == 200 / 2.5


@pytest.mark.parametrize("entity, key, value, message", [
    ((("user", "a"),), "producer_byte_rate", 1.5, "producer_byte_rate cannot be a fractional value."),
    ((("user", "a"),), "producer_byte_rate", 0.0, "Quota producer_byte_rate must be greater than 0"),
    ((("user", "a"),), "request_percentage", float("nan"), "Quota request_percentage must be greater than 0"),
    ((("user", "a"),), "producer_byte_rate", 2.0**64, "too large for a LONG"),
    ((("ip", "1.2.3.4"),), "connection_creation_rate", 2.0**31, "too large for an INT"),
    ((("ip", "1.2.3.4"),), "request_percentage", 5.0, "Invalid configuration key request_percentage"),
])
def test_values_are_checked_as_kafka_checks_them(entity, key, value, message):
    with pytest.raises(QuotaError, match=message.replace(".", r"\.")):
        check_value(entity_of(entity), key, value)


def test_stored_values_and_filters():
    assert stored_text(PRODUCER_BYTE_RATE, 1048576.0) == "1048576"
    assert stored_text(REQUEST_PERCENTAGE, 50.0) == "50.0"
    pair = entity_of([("user", "alice"), ("client-id", None)])
    assert pair == (("client-id", None), ("user", "alice"))
    assert matches(pair, {"user": "alice"}, (), strict=False)
    assert not matches(pair, {"user": "alice"}, (), strict=True)
    assert matches(pair, {"user": "alice", "client-id": None}, (), strict=True)
    assert matches(pair, {}, {"client-id"}, strict=False)
    assert not matches(pair, {"client-id": "app"}, (), strict=False)


def mutation_quotas(rate: float) -> tuple[ClientQuotas, FakeClock]:
    """controller_mutation_rate for client id "admin", Kafka's windows: a bucket of 11 seconds' worth."""
    clock = FakeClock()
    q = ClientQuotas(11, 1, now_ms=clock, mutation_window_num=11, mutation_window_size_s=1)
    q.configure({entity_of((("client-id", "admin"),)): {"controller_mutation_rate": rate}})
    return q, clock


def test_strict_mutation_quota_refuses_once_the_bucket_is_below_zero_and_says_for_how_long():
    q, clock = mutation_quotas(10)  # 110 tokens
    assert q.mutation_enabled and q.mutation_quota("alice", "other", strict=True) is None
    quota = q.mutation_quota("alice", "admin", strict=True)
    quota.record(100)  # 10 left
    quota.record(90)  # accepted: tokens were left; now -80
    assert quota.throttle_ms == 0
    with pytest.raises(KafkaError) as refused:
        quota.record(1)
    assert refused.value.code == ErrorCode.throttling_quota_exceeded
    assert quota.throttle_ms == 8000  # 80 tokens at 10 a second
    clock.ms += 3000
    assert quota.throttle_ms == 5000  # counted from now
    # A new request of the same client shares the bucket: still 50 tokens short.
    again = q.mutation_quota("bob", "admin", strict=True)
    with pytest.raises(KafkaError):
        again.record(1)
    assert again.throttle_ms == 5000
    clock.ms += 5000
    again = q.mutation_quota("bob", "admin", strict=True)
    again.record(200)  # the bucket is back at 0: accepted
    assert again.throttle_ms == 0


def test_permissive_mutation_quota_takes_everything_and_throttles_while_below_zero():
    q, clock = mutation_quotas(5)  # 55 tokens
    quota = q.mutation_quota("", "admin", strict=False)
    quota.record(50)
    assert quota.throttle_ms == 0
    quota.record(15)  # -10
    quota.record(10)  # -20: never refused
    assert quota.throttle_ms == 4000
    clock.ms += 60_000  # refilled, but never beyond the bucket
    quota = q.mutation_quota("", "admin", strict=False)
    quota.record(55)
    assert quota.throttle_ms == 0
    quota.record(1)
    assert quota.throttle_ms == 200
