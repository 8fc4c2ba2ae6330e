"""A leader cut off from ZooKeeper and the other brokers, while its clients can still reach it.

Each broker and ZooKeeper live in network namespaces of their own, joined by a bridge in the
test's namespace (where the clients run). Cutting the leader off is a blackhole route in its
namespace for ZooKeeper's and the other brokers' addresses (no tc actions or iptables needed):
nothing it sends them arrives, so its TCP with them fails both ways; the clients still reach it. What Kafka promises, and what this checks: the isolated leader acknowledges no acks=all
write (its followers cannot fetch, and without ZooKeeper it cannot shrink its ISR, so its high
watermark stands still); the majority side elects a new leader once the isolated broker's session
expires, and producing goes on there; after healing, the old leader truncates the tail it wrote
alone and catches up. 0 acknowledged records lost, none twice.
"""

from __future__ import annotations

import time

import pytest

from .load import LoadProducer, assert_replicas_hold, replica_records, wait_for
from .netns import AVAILABLE, Network, namespaced_cluster, stop_all
from .test_replication import create_replicated_topic, describe

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="network namespaces need root and iproute2")

def test_isolated_leader_acknowledges_nothing_and_truncates_after_healing(tmp_path, request):
    network = Network()
    processes: list = []
    try:
        zookeeper, brokers, addresses = namespaced_cluster(network, tmp_path, 3, processes)
        request.node._odradek_brokers = list(brokers.values())
        bootstrap = ",".join(b.bootstrap_servers for b in brokers.values())
        create_replicated_topic(bootstrap, "split", 1, **{"min.insync.replicas": "2"})
        leader = describe(bootstrap, "split")[0][0]
        others = [n for n in brokers if n != leader]
        majority = ",".join(brokers[n].bootstrap_servers for n in others)
        with LoadProducer(bootstrap, "split", 1, **{"request.timeout.ms": 10000}) as load:
            load.wait_for_more(1000, "records before the partition")
            network.cut(f"b{leader}", [zookeeper.address] + [addresses[n] for n in others])
            wait_for(lambda: describe(majority, "split")[0][0] in others, 60, "a new leader on the majority side")
            load.wait_for_more(1000, "producing goes on with the new leader", timeout_s=90)
            network.heal(f"b{leader}")
            wait_for(lambda: sorted(describe(majority, "split")[0][2]) == [1, 2, 3], 90, "the old leader back in the ISR")
        time.sleep(1)
        for broker in brokers.values():
            assert broker.stop(timeout_s=30) == 0, broker.output()[-3000:]
        assert_replicas_hold(brokers, load)
        logs = {n: replica_records(b.log_dir, "split", 0) for n, b in brokers.items()}
        assert logs[leader] == logs[others[0]], "the old leader kept a divergent tail"
    finally:
        stop_all(processes)
        network.remove()
