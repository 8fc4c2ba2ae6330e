"""kcat (librdkafka's command-line client, from Debian) against odradek: metadata, producing with
keys and headers, consuming from given offsets until the end, and the offset-for-timestamp query."""

from __future__ import annotations

import json

from .conftest import Message, consume, create_topic, produce, run

LINES = [("k0", "v0"), ("k1", "value one"), ("k2", '{"n": 2}'), ("k3", "ünïcødé"), ("k4", "v4")]


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_kcat_metadata_lists_broker_topic_and_partitions(broker, kcat):
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, "kcat-meta", partitions=3)
    listed = run([kcat, "-b", bootstrap, "-L", "-J", "-t", "kcat-meta"])
    metadata = json.loads(listed.stdout)
    assert metadata["brokers"] == [{"id": 0, "name": bootstrap}]
    assert metadata["controllerid"] == 0
    topics = {t["topic"]: t for t in metadata["topics"]}
    assert list(topics) == ["kcat-meta"]
    assert "error" not in topics["kcat-meta"]
    partitions = sorted(topics["kcat-meta"]["partitions"], key=lambda p: p["partition"])
    assert [(p["partition"], p["leader"], [r["id"] for r in p["replicas"]], [r["id"] for r in p["isrs"]])
            for p in partitions] == [(p, 0, [0], [0]) for p in range(3)]

    plain = run([kcat, "-b", bootstrap, "-L"])
    assert "1 brokers:" in plain.stdout and f"broker 0 at {bootstrap} (controller)" in plain.stdout
    assert 'topic "kcat-meta" with 3 partitions:' in plain.stdout


def test_kcat_produces_keys_and_headers_and_consumes_from_offsets(broker, kcat):
    bootstrap = broker.bootstrap_servers
    topic = "kcat-keys"
    create_topic(bootstrap, topic, partitions=2)
    text = "".join(f"{key}:{value}\n" for key, value in LINES)
    run([kcat, "-b", bootstrap, "-P", "-t", topic, "-p", "1", "-K:", "-H", "source=kcat", "-H", "n=1", "-H", "n=2"],
        input=text)

    # what another client sees: every key, value and header, in order
    stored = consume(bootstrap, topic, [1], len(LINES))
    assert [(m.offset, m.key, m.value, m.headers) for m in stored] == [
        (i, k.encode(), v.encode(), (("source", b"kcat"), ("n", b"1"), ("n", b"2"))) for i, (k, v) in enumerate(LINES)
    ]

    def consumed(offset: str) -> list[tuple[int, str, str, list[str]]]:
        result = run([kcat, "-b", bootstrap, "-C", "-t", topic, "-p", "1", "-o", offset, "-e", "-J"])
        return [(m["offset"], m["key"], m["payload"], m["headers"]) for m in _json_lines(result.stdout)]

    headers = ["source", "kcat", "n", "1", "n", "2"]
    everything = [(i, k, v, headers) for i, (k, v) in enumerate(LINES)]
    assert consumed("beginning") == everything
    assert consumed("2") == everything[2:]  # absolute offset
    assert consumed("-2") == everything[-2:]  # relative to the end
    assert consumed("end") == []

    # the plain formatter: key and value with -f
    formatted = run([kcat, "-b", bootstrap, "-C", "-t", topic, "-p", "1", "-o", "beginning", "-e", "-q",
                     "-f", "%o|%k|%s|%h\n"])
    assert formatted.stdout.splitlines() == [f"{i}|{k}|{v}|source=kcat,n=1,n=2" for i, (k, v) in enumerate(LINES)]


def test_kcat_queries_offsets_by_timestamp(broker, kcat):
    bootstrap = broker.bootstrap_servers
    topic = "kcat-times"
    create_topic(bootstrap, topic, partitions=1)
    base_ms = 1_700_000_000_000
    produce(bootstrap, topic, [Message(0, 0, None, f"v{i}".encode(), (), base_ms + 1000 * i) for i in range(10)])

    def offset_for(timestamp_ms: int) -> int:
        result = run([kcat, "-b", bootstrap, "-Q", "-t", f"{topic}:0:{timestamp_ms}"])
        lines = [line for line in result.stdout.splitlines() if line.startswith(topic)]
        assert len(lines) == 1, result.stdout + result.stderr
        # "kcat-times [0] offset 5"
        return int(lines[0].split()[-1])

    assert offset_for(base_ms) == 0
    assert offset_for(base_ms + 5000) == 5
    assert offset_for(base_ms + 4500) == 5  # the first record at or after the timestamp
    assert offset_for(base_ms + 99_000) == -1  # none that late: "end" is -1, as Kafka answers
