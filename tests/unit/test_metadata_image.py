"""The metadata image is replaced whole on each change; the store's writes are conditional."""

from __future__ import annotations

import uuid

import pytest

from odradek.cluster.local_store import LocalMetadataStore
from odradek.cluster.metadata import (
    BrokerRegistration,
    Endpoint,
    MetadataCache,
    MetadataImage,
    PartitionRegistration,
    TopicImage,
)
from odradek.cluster.store import BadVersionError, TopicRecord
from odradek.protocol.topic_partition import TopicPartition


def topic(name: str, partitions: int = 2) -> TopicImage:
    return TopicImage(name, uuid.uuid4(), tuple(PartitionRegistration((1, 2), (1, 2), 1, 3) for _ in range(partitions)))


def test_new_images_leave_the_old_one_untouched():
    broker = BrokerRegistration(1, (Endpoint("PLAINTEXT", "h", 9092), Endpoint("INTERNAL", "i", 9093)), rack="r1")
    old = MetadataImage.build("cluster", 1, [broker], [topic("a")])
    new = old.with_topic(topic("b")).without_topic("a").with_broker(BrokerRegistration(2, ()))

    assert sorted(old.topics) == ["a"] and sorted(new.topics) == ["b"]
    assert sorted(old.brokers) == [1] and sorted(new.brokers) == [1, 2]
    assert new.topic_by_id(new.topics["b"].topic_id).name == "b"
    assert old.topic_by_id(old.topics["a"].topic_id) is not None and new.topic_by_id(old.topics["a"].topic_id) is None
    assert new.partition(TopicPartition("b", 1)).leader_epoch == 3
    assert new.partition(TopicPartition("b", 2)) is None
    assert broker.endpoint("INTERNAL").port == 9093 and broker.endpoint("OTHER") is None
    with pytest.raises(TypeError):
        old.topics["c"] = topic("c")  # type: ignore[index]


def test_cache_tells_subscribers_old_and_new():
    cache = MetadataCache()
    seen = []
    cache.subscribe(lambda old, new: seen.append((sorted(old.topics), sorted(new.topics))))
    cache.publish(cache.image.with_topic(topic("x")))
    assert seen == [([], ["x"])]


def test_local_store_writes_are_compare_and_set(tmp_path):
    store = LocalMetadataStore(tmp_path)
    changes = []
    store.watch(lambda kind, key: changes.append((kind, key)))
    record = TopicRecord("t", uuid.uuid4(), 1, 1, {}, ((0,),))
    assert store.put_topic(record, expected_version=-1) == 0
    assert store.put_topic(record, expected_version=0) == 1
    with pytest.raises(BadVersionError):
        store.put_topic(record, expected_version=0)
    reopened = LocalMetadataStore(tmp_path)
    assert reopened.topic_version("t") == 1
    assert reopened.topics()["t"].assignment == ((0,),)
    with pytest.raises(BadVersionError):
        reopened.remove_topic("t", expected_version=5)
    reopened.remove_topic("t", expected_version=1)
    assert changes == [("topic", "t"), ("topic", "t")]
