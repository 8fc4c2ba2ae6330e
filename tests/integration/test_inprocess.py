"""odradek.Broker in-process (with and async with) and the odradek_broker pytest fixture."""

import asyncio
import socket
import textwrap

import aiokafka
import pytest

import odradek

from .clients import Record, consume, create_topic, produce


def roundtrip(bootstrap: str, topic: str, count: int = 100) -> None:
    create_topic(bootstrap, topic)
    records = [Record(key=None, value=f"m{i}".encode(), partition=0) for i in range(count)]
    produce("confluent", bootstrap, topic, records)
    assert [m.value for m in consume("confluent", bootstrap, topic, [0], count)] == [r.value for r in records]


def refuses_connections(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


def test_broker_as_context_manager_serves_clients_and_stops(tmp_path):
    with odradek.Broker(tmp_path / "data") as broker:
        roundtrip(broker.bootstrap_servers, "in-process")
        bootstrap = broker.bootstrap_servers
    assert refuses_connections(bootstrap)


def test_broker_keeps_data_across_instances_on_the_same_dir(tmp_path):
    with odradek.Broker(tmp_path / "data") as broker:
        roundtrip(broker.bootstrap_servers, "kept", count=10)
    with odradek.Broker(tmp_path / "data") as broker:
        assert len(consume("confluent", broker.bootstrap_servers, "kept", [0], 10)) == 10


def test_broker_as_async_context_manager_with_aiokafka(tmp_path):
    async def scenario() -> list[bytes]:
        async with odradek.Broker(tmp_path / "data", config={"num.partitions": "1"}) as broker:
            producer = aiokafka.AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
            await producer.start()
            try:
                for i in range(10):
                    await producer.send_and_wait("async-topic", f"m{i}".encode(), partition=0)
            finally:
                await producer.stop()
            consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None)
            await consumer.start()
            try:
                tp = aiokafka.TopicPartition("async-topic", 0)
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                values: list[bytes] = []
                while len(values) < 10:
                    values += [m.value for m in (await consumer.getmany(tp, timeout_ms=10_000))[tp]]
                return values
            finally:
                await consumer.stop()

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == [f"m{i}".encode() for i in range(10)]


def test_odradek_broker_fixture_gives_a_working_broker(odradek_broker):
    roundtrip(odradek_broker.bootstrap_servers, "from-fixture")


def test_odradek_broker_session_fixture_gives_a_working_broker(odradek_broker_session):
    roundtrip(odradek_broker_session.bootstrap_servers, "from-session-fixture")


def plugin_args(request: pytest.FixtureRequest) -> list[str]:
    """`-p odradek.pytest_plugin` unless the entry point already loaded it (installed package)."""
    return [] if request.config.pluginmanager.has_plugin("odradek") else ["-p", "odradek.pytest_plugin"]


def test_fixture_points_at_existing_broker_from_environment(pytester, broker, monkeypatch, request):
    monkeypatch.setenv("ODRADEK_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    pytester.makepyfile(
        textwrap.dedent(
            f"""
            import confluent_kafka

            def test_uses_existing(odradek_broker):
                assert odradek_broker.bootstrap_servers == {broker.bootstrap_servers!r}
                producer = confluent_kafka.Producer({{"bootstrap.servers": odradek_broker.bootstrap_servers}})
                producer.produce("made-by-inner-test", b"hello", partition=0)
                assert producer.flush(30) == 0
            """
        )
    )
    result = pytester.runpytest(*plugin_args(request), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert [m.value for m in consume("confluent", broker.bootstrap_servers, "made-by-inner-test", [0], 1)] == [b"hello"]


def test_fixture_warns_when_the_existing_broker_lacks_the_requested_config(pytester, start_broker, monkeypatch, request):
    """A test that overrides odradek_broker_config against an external broker is told which keys
    that broker does not have, instead of silently getting a broker with 1 partition per topic."""
    broker = start_broker(**{"num.partitions": 1, "log.retention.ms": 60000})
    monkeypatch.setenv("ODRADEK_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def odradek_broker_config():
                return {"num.partitions": "3", "log.retention.ms": "60000"}

            def test_wants_three_partitions(odradek_broker):
                pass
            """
        )
    )
    result = pytester.runpytest(*plugin_args(request), "-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*OdradekConfigWarning*num.partitions='3' (broker has '1')*"])
    assert "log.retention.ms=" not in result.stdout.str(), "a key the broker does have was reported"
