"""The broker's Prometheus metrics, named as the Prometheus JMX exporter's Kafka rules name Kafka's
(kafka_server_brokertopicmetrics_messagesin_total, kafka_network_requestmetrics_requests_total,
kafka_log_log_size, kafka_server_replicamanager_underreplicatedpartitions, ...), so dashboards made
for Kafka read them; consumer lag as kafka_exporter names it (kafka_consumergroup_lag), with a
Burrow-style status per group.

Collected when scraped, from the counters the produce, fetch and request paths keep and from the
broker's state, in a worker thread: the event loop pays nothing for a scrape but sharing the
interpreter, and every read is of a copy taken in one step (list(dict.items())), so a change on
the loop meanwhile cannot break it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from odradek.handlers.context import BrokerServices
from odradek.protocol.topic_partition import TopicPartition
from odradek.security.quotas import CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE
from odradek.server.request_stats import RequestStats
from odradek.web.consumer_lag import STATUSES, LagTracker, worst

QUANTILES = (0.5, 0.75, 0.95, 0.98, 0.99, 0.999)  # what Kafka's Yammer histograms report


def _family(name: str, kind: str, doc: str) -> Metric:
    return Metric(name, doc, kind)


class BrokerCollector:
    """A prometheus-client collector over one broker."""

    def __init__(self, services: BrokerServices, request_stats: RequestStats,
                 connections: Callable[[], dict[str, int]], in_flight: Callable[[], int],
                 is_controller: Callable[[], bool],
                 uncleanable: Callable[[], dict[Path, tuple[int, int]]] = dict) -> None:
        self.services = services
        self.request_stats = request_stats
        self.connections = connections
        self.in_flight = in_flight
        self.is_controller = is_controller
        self.uncleanable = uncleanable
        self.lag = LagTracker()

    def collect(self):
        yield from self._topic_metrics()
        yield from self._request_metrics()
        yield from self._socket_metrics()
        yield from self._partition_metrics()
        yield from self._controller_metrics()
        yield from self._cleaner_metrics()
        yield from self._quota_metrics()
        yield from self._consumer_group_metrics()

    # -- BrokerTopicMetrics ------------------------------------------------------------------

    def _topic_metrics(self):
        stats = self.services.replicas.topic_stats
        topics = list(stats.topics.items())
        for field, name, doc in (
            ("messages_in", "messagesin", "Records appended by producers"),
            ("bytes_in", "bytesin", "Bytes of records appended by producers"),
            ("bytes_out", "bytesout", "Bytes of records sent to consumers"),
            ("replication_bytes_in", "replicationbytesin", "Bytes of records fetched from leaders as follower"),
            ("replication_bytes_out", "replicationbytesout", "Bytes of records sent to followers"),
            ("failed_produce_requests", "failedproducerequests", "Partitions of produce requests that failed"),
            ("failed_fetch_requests", "failedfetchrequests", "Partitions of fetch requests that failed"),
        ):
            family = _family(f"kafka_server_brokertopicmetrics_{name}", "counter", doc)
            family.add_sample(f"kafka_server_brokertopicmetrics_{name}_total", {}, getattr(stats.total, field))
            for topic, counters in topics:
                family.add_sample(f"kafka_server_brokertopicmetrics_{name}_total", {"topic": topic}, getattr(counters, field))
            yield family

    # -- RequestMetrics ----------------------------------------------------------------------

    def _request_metrics(self):
        apis = list(self.request_stats.apis.items())
        requests = _family("kafka_network_requestmetrics_requests", "counter", "Requests answered, per API and version")
        for _key, api in apis:
            for version, count in list(api.versions.items()):
                requests.add_sample("kafka_network_requestmetrics_requests_total",
                                    {"request": api.name, "version": str(version)}, count)
        yield requests
        for stage, doc in (("total", "From the request's arrival to its answer"),
                           ("local", "The event loop's work on the request"),
                           ("remote", "Waiting: a parked fetch, the replicas of an acks=all produce")):
            quantiles = _family(f"kafka_network_requestmetrics_{stage}timems", "gauge", f"{doc}, ms, per API")
            histogram = _family(f"odradek_request_{stage}_time_seconds", "histogram", f"{doc}, per API")
            for _key, api in apis:
                timing = getattr(api, stage)
                for q in QUANTILES:
                    quantiles.add_sample(f"kafka_network_requestmetrics_{stage}timems",
                                         {"request": api.name, "quantile": str(q)}, timing.quantile(q) * 1000)
                count = 0
                for bound, count in timing.cumulative():
                    histogram.add_sample(f"odradek_request_{stage}_time_seconds_bucket", {"request": api.name, "le": bound}, count)
                histogram.add_sample(f"odradek_request_{stage}_time_seconds_count", {"request": api.name}, count)
                histogram.add_sample(f"odradek_request_{stage}_time_seconds_sum", {"request": api.name}, timing.sum)
            yield quantiles
            yield histogram

    def _socket_metrics(self):
        connections = _family("kafka_server_socket_server_metrics_connection_count", "gauge", "Open client connections")
        for listener, count in self.connections().items():
            connections.add_sample("kafka_server_socket_server_metrics_connection_count", {"listener": listener}, count)
        yield connections
        queue = _family("kafka_network_requestchannel_requestqueuesize", "gauge",
                        "Requests being handled now (each connection has at most one)")
        queue.add_sample("kafka_network_requestchannel_requestqueuesize", {}, self.in_flight())
        yield queue

    # -- partitions: Log, Partition, ReplicaManager -----------------------------------------

    def _partition_metrics(self):
        partitions = self.services.replicas.partitions()
        log_families = {name: _family(f"kafka_log_log_{name}", "gauge", doc) for name, doc in (
            ("size", "Bytes of the partition's log on disk"),
            ("numlogsegments", "Segments of the partition's log"),
            ("logendoffset", "The partition's log end offset"),
            ("logstartoffset", "The partition's log start offset"),
        )}
        under_replicated = _family("kafka_cluster_partition_underreplicated", "gauge", "1 when the leader's ISR lacks a replica")
        under_min_isr = _family("kafka_cluster_partition_underminisr", "gauge", "1 when the ISR is below min.insync.replicas")
        leaders = under = under_min = at_min = 0
        for partition in partitions:
            tp = partition.topic_partition
            labels = {"topic": tp.topic, "partition": str(tp.partition)}
            log = partition.log
            log_families["size"].add_sample("kafka_log_log_size", labels, log.size_bytes)
            log_families["numlogsegments"].add_sample("kafka_log_log_numlogsegments", labels, len(log.segments))
            log_families["logendoffset"].add_sample("kafka_log_log_logendoffset", labels, partition.log_end_offset)
            log_families["logstartoffset"].add_sample("kafka_log_log_logstartoffset", labels, partition.log_start_offset)
            if partition.is_leader:
                leaders += 1
                isr = len(partition.isr)
                lacking = isr < len(partition.replicas)
                below = isr < partition.min_insync_replicas
                under += lacking
                under_min += below
                at_min += isr == partition.min_insync_replicas
                under_replicated.add_sample("kafka_cluster_partition_underreplicated", labels, int(lacking))
                under_min_isr.add_sample("kafka_cluster_partition_underminisr", labels, int(below))
        yield from log_families.values()
        yield under_replicated
        yield under_min_isr
        stats = self.services.replicas.topic_stats
        for name, value, doc in (
            ("partitioncount", len(partitions), "Partitions hosted by this broker"),
            ("leadercount", leaders, "Partitions this broker leads"),
            ("underreplicatedpartitions", under, "Partitions led here whose ISR lacks a replica"),
            ("underminisrpartitioncount", under_min, "Partitions led here with fewer in-sync replicas than min.insync.replicas"),
            ("atminisrpartitioncount", at_min, "Partitions led here with exactly min.insync.replicas in-sync replicas"),
        ):
            family = _family(f"kafka_server_replicamanager_{name}", "gauge", doc)
            family.add_sample(f"kafka_server_replicamanager_{name}", {}, value)
            yield family
        for name, value, doc in (("isrshrinks", stats.isr_shrinks, "ISR shrinks of partitions led here"),
                                 ("isrexpands", stats.isr_expands, "ISR expands of partitions led here")):
            family = _family(f"kafka_server_replicamanager_{name}", "counter", doc)
            family.add_sample(f"kafka_server_replicamanager_{name}_total", {}, value)
            yield family

    def _controller_metrics(self):
        image = self.services.metadata.image
        active = self.is_controller()
        offline = sum(1 for topic in list(image.topics.values()) for p in topic.partitions if p.leader < 0) if active else 0
        for name, value, doc in (
            ("activecontrollercount", int(active), "1 on the broker that is the controller"),
            ("offlinepartitionscount", offline, "Partitions without a leader (on the controller)"),
            ("globaltopiccount", len(image.topics) if active else 0, "Topics in the cluster (on the controller)"),
            ("globalpartitioncount", sum(len(t.partitions) for t in list(image.topics.values())) if active else 0,
             "Partitions in the cluster (on the controller)"),
        ):
            family = _family(f"kafka_controller_kafkacontroller_{name}", "gauge", doc)
            family.add_sample(f"kafka_controller_kafkacontroller_{name}", {}, value)
            yield family

    def _cleaner_metrics(self):
        """LogCleanerManager's gauges per log directory: partitions a cleaner pass failed on (corrupt
        records), skipped since; an alert on a count above 0 finds a compacted topic that grows."""
        marked = self.uncleanable()
        count = _family("kafka_log_logcleanermanager_uncleanable_partitions_count", "gauge",
                        "Partitions the log cleaner marked uncleanable, per log directory")
        size = _family("kafka_log_logcleanermanager_uncleanable_bytes", "gauge",
                       "Dirty bytes of those partitions when they were marked, per log directory")
        for log_dir in self.services.replicas.log_manager.log_dirs:
            partitions, dirty_bytes = marked.get(Path(log_dir), (0, 0))
            count.add_sample("kafka_log_logcleanermanager_uncleanable_partitions_count", {"logdirectory": str(log_dir)}, partitions)
            size.add_sample("kafka_log_logcleanermanager_uncleanable_bytes", {"logdirectory": str(log_dir)}, dirty_bytes)
        yield count
        yield size

    def _quota_metrics(self):
        family = _family("odradek_quota_throttled_responses", "counter",
                         "Responses that told a client to wait, per quota (producer_byte_rate, ...)")
        throttled = self.services.quotas.throttled
        for key in sorted({PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE} | set(throttled)):
            family.add_sample("odradek_quota_throttled_responses_total", {"quota": key}, throttled.get(key, 0))
        yield family

    # -- consumer groups ---------------------------------------------------------------------

    def _consumer_group_metrics(self):
        groups = self.services.groups
        replicas = self.services.replicas
        now_ms = time.time() * 1000
        current = _family("kafka_consumergroup_current_offset", "gauge", "The group's committed offset")
        lag = _family("kafka_consumergroup_lag", "gauge", "High watermark minus the group's committed offset")
        lag_sum = _family("kafka_consumergroup_lag_sum", "gauge", "The group's lag over a topic's partitions")
        members = _family("kafka_consumergroup_members", "gauge", "Members of the group")
        status = _family("kafka_consumergroup_status", "gauge",
                         "1 for the group's Burrow-style status (OK, WARN, STALL, STOP), 0 for the others")
        seen: set[tuple[str, str, int]] = set()
        for group_id, offsets in list(groups.offsets.items()):
            sums: dict[str, int] = {}
            statuses = []
            for (topic, index), committed in list(offsets.items()):
                partition = replicas.partition(TopicPartition(topic, index))
                if partition is None:
                    continue  # led elsewhere and not hosted here: its high watermark is not known here
                entry = self.lag.observe(group_id, topic, index, committed.offset, committed.commit_timestamp_ms,
                                         partition.high_watermark)
                seen.add((group_id, topic, index))
                labels = {"consumergroup": group_id, "topic": topic, "partition": str(index)}
                current.add_sample("kafka_consumergroup_current_offset", labels, committed.offset)
                lag.add_sample("kafka_consumergroup_lag", labels, entry.lag)
                sums[topic] = sums.get(topic, 0) + entry.lag
                statuses.append(entry.status(now_ms))
            for topic, total in sums.items():
                lag_sum.add_sample("kafka_consumergroup_lag_sum", {"consumergroup": group_id, "topic": topic}, total)
            group_status = worst(statuses)
            for name in STATUSES:
                status.add_sample("kafka_consumergroup_status", {"consumergroup": group_id, "status": name},
                                  int(name == group_status))
        for group_id, group in list(groups.groups.items()):
            members.add_sample("kafka_consumergroup_members", {"consumergroup": group_id}, len(group.members))
        for group_id, group in list(groups.consumer_groups.items()):
            members.add_sample("kafka_consumergroup_members", {"consumergroup": group_id}, len(group.members))
        self.lag.forget_except(seen)
        yield from (current, lag, lag_sum, members, status)


def registry_for(collector: BrokerCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
