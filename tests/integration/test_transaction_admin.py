"""What `kafka-transactions list/describe/find-hanging` and admin clients see (here kafka-python's
admin, which implements the same KIP-664 calls): DescribeTransactions and ListTransactions answer
for every state, including an id that never started a transaction and one that does not exist,
and filter as Kafka 4.4 does."""

from __future__ import annotations

import confluent_kafka
import kafka.admin
import kafka.errors
import pytest
from confluent_kafka.admin import AdminClient, NewTopic


def _producers(bootstrap: str):
    """open-1: a transaction open; done-1: one committed; empty-1: initialized, nothing sent."""
    made = {}
    for transactional_id in ("open-1", "done-1", "empty-1"):
        producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
        producer.init_transactions(30)
        made[transactional_id] = producer
    made["open-1"].begin_transaction()
    made["open-1"].produce("orders", value=b"open")
    made["open-1"].flush(30)
    made["done-1"].begin_transaction()
    made["done-1"].produce("orders", value=b"done")
    made["done-1"].commit_transaction(30)
    return made


def test_describe_list_and_find_hanging_transactions_in_every_state(broker):
    creator = AdminClient({"bootstrap.servers": broker.bootstrap_servers})  # must outlive its futures
    creator.create_topics([NewTopic("orders", 1, 1)])["orders"].result(30)
    producers = _producers(broker.bootstrap_servers)
    admin = kafka.admin.KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        described = admin.describe_transactions(["open-1", "done-1", "empty-1"])
        assert described["open-1"].state == "Ongoing"
        assert {(tp.topic, tp.partition) for tp in described["open-1"].topic_partitions} == {("orders", 0)}
        assert described["done-1"].state == "CompleteCommit"
        assert described["empty-1"].state == "Empty"
        assert described["empty-1"].transaction_start_time_ms == -1, "Kafka's -1: no transaction yet"
        with pytest.raises(kafka.errors.TransactionalIdNotFoundError):
            admin.describe_transactions(["missing-1"])

        def listed(**filters):
            by_broker = admin.list_transactions(**filters)
            return sorted(t.transactional_id for listings in by_broker.values() for t in listings)

        assert listed() == ["done-1", "empty-1", "open-1"]
        assert listed(state_filters=["Ongoing"]) == ["open-1"]
        assert listed(transactional_id_pattern="open-.*") == ["open-1"]
        assert listed(transactional_id_pattern="open") == [], "the pattern must match the whole id, as in Kafka"
        assert admin.find_hanging_transactions() == [], "an open transaction its coordinator knows is not hanging"
    finally:
        admin.close()
        producers["open-1"].abort_transaction(30)
