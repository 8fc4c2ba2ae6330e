"""Config table, .properties parsing, BrokerConfig resolution and topic config validation."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.config import (
    CONFIG_DEFS,
    LONG_MAX,
    BrokerConfig,
    ConfigError,
    Listener,
    broker_synonyms,
    describe_doc_markdown,
    parse_properties,
    topic_config_defaults,
    validate_topic_configs,
)

REPO = Path(__file__).resolve().parents[2]


def broker(**props: str) -> BrokerConfig:
    config, warnings = BrokerConfig.from_properties({k.replace("_", "."): v for k, v in props.items()})
    assert warnings == []
    return config


def config_error(props: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        BrokerConfig.from_properties(props)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- parse_properties -----------------------------------------------------------------


def test_properties_separators_comments_and_whitespace():
    text = "# comment\n  ! bang comment\n\na=1\n  b : 2  \nc 3\nd=\ne = x = y\n"
    assert parse_properties(text) == {"a": "1", "b": "2", "c": "3", "d": "", "e": "x = y"}


def test_properties_backslash_continuation_strips_leading_whitespace():
    text = "listeners=PLAINTEXT://a:1,\\\n    SSL://b:2\nnext=ok\n"
    assert parse_properties(text) == {"listeners": "PLAINTEXT://a:1,SSL://b:2", "next": "ok"}


def test_properties_even_backslashes_do_not_continue():
    assert parse_properties("path=C:\\\\\nx=1") == {"path": "C:\\", "x": "1"}


def test_properties_escapes_in_keys_and_values():
    text = r"a\ key\=x=tab\there\u0041\:z"
    assert parse_properties(text) == {"a key=x": "tab\thereA:z"}


def test_properties_comment_line_ending_in_backslash_does_not_continue():
    assert parse_properties("# comment \\\na=1") == {"a": "1"}


def test_properties_later_key_wins_and_crlf_lines():
    assert parse_properties("a=1\r\na=2\r\n") == {"a": "2"}


def test_example_server_properties_starts_without_warnings():
    props = parse_properties((REPO / "config" / "server.properties").read_text())
    config, warnings = BrokerConfig.from_properties(props)
    assert warnings == []
    assert config.listeners == [Listener("PLAINTEXT", "localhost", 9092)]
    assert config.log_dirs == [Path("./odradek-data")]
    assert config["zookeeper.connect"] is None


# --- types and defaults -----------------------------------------------------------------


def test_defaults_are_kafkas_except_the_data_dir():
    config = BrokerConfig.defaults()
    assert config["num.partitions"] == 1
    assert config["default.replication.factor"] == 1
    assert config["auto.create.topics.enable"] is True
    assert config["log.segment.bytes"] == 1073741824
    assert config["message.max.bytes"] == 1048588
    assert config["socket.request.max.bytes"] == 104857600
    assert config["log.flush.interval.messages"] == LONG_MAX
    assert config["offsets.topic.num.partitions"] == 50
    assert config["offsets.topic.replication.factor"] == 3
    assert config["group.initial.rebalance.delay.ms"] == 3000
    assert config["log.cleanup.policy"] == ["delete"]
    assert config["log.message.timestamp.type"] == "CreateTime"
    assert config["cluster.id"] is None
    assert config.log_dirs == [Path("./odradek-data")]
    assert config.node_id == 0
    assert config.listeners == [Listener("PLAINTEXT", "localhost", 9092)]
    assert config.retention_ms == 168 * 3_600_000
    assert config.log_roll_ms == 168 * 3_600_000
    assert config.flush_interval_ms == LONG_MAX


def test_values_are_typed_and_trimmed():
    config = broker(**{
        "num.partitions": " 3 ",
        "auto.create.topics.enable": "FALSE",
        "log.cleanup.policy": "compact, delete",
        "log.cleaner.min.cleanable.ratio": "0.25",
        "cluster.id": " abc ",
        "log.retention.bytes": "-1",
    })
    assert config["num.partitions"] == 3
    assert config["auto.create.topics.enable"] is False
    assert config["log.cleanup.policy"] == ["compact", "delete"]
    assert config["log.cleaner.min.cleanable.ratio"] == 0.25
    assert config["cluster.id"] == "abc"
    assert not config.is_default("num.partitions")
    assert config.is_default("message.max.bytes")


def test_empty_value_of_unset_by_default_config_means_unset():
    config = broker(**{"zookeeper.connect": "", "log.retention.ms": " "})
    assert config["zookeeper.connect"] is None
    assert config.retention_ms == 168 * 3_600_000


def test_mutating_a_list_value_does_not_change_the_defaults():
    config = BrokerConfig.defaults()
    config["log.cleanup.policy"].append("compact")
    assert BrokerConfig.defaults()["log.cleanup.policy"] == ["delete"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("num.partitions", "abc", "invalid value 'abc' for config 'num.partitions': expected an integer"),
        ("num.partitions", "0", "invalid value '0' for config 'num.partitions': expected a value at least 1"),
        ("num.partitions", "3000000000", "expected an integer between -2147483648 and 2147483647"),
        ("log.segment.bytes", "13", "expected a value at least 14"),
        ("auto.create.topics.enable", "yes", "expected a boolean (true or false)"),
        ("log.retention.ms", "1.5", "expected a long integer"),
        ("log.cleanup.policy", "delete,shred", "expected one of delete, compact"),
        ("log.message.timestamp.type", "Now", "expected one of CreateTime, LogAppendTime"),
        ("log.cleaner.min.cleanable.ratio", "2", "expected a value between 0 and 1"),
        ("log.cleaner.min.cleanable.ratio", "half", "expected a number"),
        ("offsets.topic.replication.factor", "40000", "expected a short integer between -32768 and 32767"),
    ],
)
def test_invalid_value_is_one_line_naming_value_config_and_expectation(key, value, expected):
    message = config_error({key: value})
    assert expected in message
    assert f"'{key}'" in message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --- unknown keys -----------------------------------------------------------------------


def test_unknown_key_warns_with_nearest_suggestion():
    config, warnings = BrokerConfig.from_properties({"log.segment.byte": "100"})
    assert warnings == ["unknown config 'log.segment.byte' ignored; did you mean 'log.segment.bytes'?"]
    assert config["log.segment.bytes"] == 1073741824


def test_unknown_key_far_from_any_name_warns_without_suggestion():
    _, warnings = BrokerConfig.from_properties({"completely.different": "1"})
    assert warnings == ["unknown config 'completely.different' ignored"]


def test_topic_name_in_server_properties_suggests_the_broker_synonym():
    _, warnings = BrokerConfig.from_properties({"retention.ms": "1000"})
    assert warnings == ["unknown config 'retention.ms' ignored; did you mean 'log.retention.ms'?"]


# --- listeners --------------------------------------------------------------------------


def test_listeners_parse_names_hosts_ports():
    config = broker(listeners="PLAINTEXT://:0, ssl://[::1]:9093,INTERNAL://10.0.0.1:19092")
    assert config.listeners == [
        Listener("PLAINTEXT", "0.0.0.0", 0),
        Listener("SSL", "::1", 9093),
        Listener("INTERNAL", "10.0.0.1", 19092),
    ]
    assert str(config.listeners[1]) == "SSL://[::1]:9093"


def test_advertised_listeners_default_to_listeners():
    config = broker(listeners="PLAINTEXT://127.0.0.1:9092")
    assert config.advertised_listeners == config.listeners


def test_advertised_listeners_default_replaces_wildcard_host():
    config = broker(listeners="PLAINTEXT://:9092")
    [advertised] = config.advertised_listeners
    assert advertised.host not in ("", "0.0.0.0")
    assert advertised.port == 9092


def test_explicit_advertised_listeners():
    config = broker(**{"advertised.listeners": "PLAINTEXT://broker.example:19092"})
    assert config.advertised_listeners == [Listener("PLAINTEXT", "broker.example", 19092)]


@pytest.mark.parametrize(
    "value",
    ["localhost:9092", "PLAINTEXT://localhost", "PLAINTEXT://localhost:99999", "PLAINTEXT://h:1,PLAINTEXT://h:2", ""],
)
def test_bad_listeners_are_one_line_errors(value):
    message = config_error({"listeners": value})
    assert "'listeners'" in message


def test_advertising_wildcard_address_is_an_error():
    message = config_error({"advertised.listeners": "PLAINTEXT://0.0.0.0:9092"})
    assert "0.0.0.0 cannot be advertised" in message


# --- synonyms and fallbacks ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "node_id"),
    [({}, 0), ({"node.id": "3"}, 3), ({"broker.id": "4"}, 4), ({"node.id": "5", "broker.id": "5"}, 5)],
)
def test_node_id_resolves_from_either_synonym(props, node_id):
    assert BrokerConfig.from_properties(props)[0].node_id == node_id


def test_node_id_and_broker_id_that_disagree_are_an_error():
    assert config_error({"node.id": "1", "broker.id": "2"}) == (
        "config 'node.id' (1) and 'broker.id' (2) disagree; set only one"
    )


def test_log_dirs_wins_over_log_dir():
    assert broker(**{"log.dir": "/a"}).log_dirs == [Path("/a")]
    assert broker(**{"log.dir": "/a", "log.dirs": "/b,/c"}).log_dirs == [Path("/b"), Path("/c")]


def test_retention_ms_precedence_ms_minutes_hours():
    assert broker(**{"log.retention.hours": "1"}).retention_ms == 3_600_000
    assert broker(**{"log.retention.hours": "1", "log.retention.minutes": "2"}).retention_ms == 120_000
    assert broker(**{"log.retention.minutes": "2", "log.retention.ms": "5"}).retention_ms == 5
    assert broker(**{"log.retention.ms": "-7"}).retention_ms == -1
    assert broker(**{"log.retention.hours": "-1"}).retention_ms == -1


def test_roll_and_flush_fallbacks():
    assert broker(**{"log.roll.hours": "2"}).log_roll_ms == 7_200_000
    assert broker(**{"log.roll.hours": "2", "log.roll.ms": "500"}).log_roll_ms == 500
    assert broker(**{"log.flush.scheduler.interval.ms": "100"}).flush_interval_ms == 100
    assert broker(**{"log.flush.interval.ms": "7"}).flush_interval_ms == 7


# --- topic configs ----------------------------------------------------------------------


def test_every_topic_config_has_a_default_from_its_broker_synonym():
    config = broker(**{
        "log.retention.minutes": "10",
        "log.segment.bytes": "1000",
        "log.roll.hours": "1",
        "message.max.bytes": "2000",
        "log.cleanup.policy": "compact",
        "min.insync.replicas": "2",
        "compression.type": "zstd",
    })
    defaults = topic_config_defaults(config)
    topic_names = {d.name for d in CONFIG_DEFS if d.scope == "topic"}
    assert set(defaults) == topic_names
    assert defaults["retention.ms"] == 600_000
    assert defaults["segment.bytes"] == 1000
    assert defaults["segment.ms"] == 3_600_000
    assert defaults["max.message.bytes"] == 2000
    assert defaults["cleanup.policy"] == ["compact"]
    assert defaults["min.insync.replicas"] == 2
    assert defaults["compression.type"] == "zstd"
    assert defaults["flush.messages"] == LONG_MAX
    assert defaults["unclean.leader.election.enable"] is False


def test_topic_defaults_match_kafka_with_default_broker():
    defaults = topic_config_defaults(BrokerConfig.defaults())
    assert defaults["retention.ms"] == 604_800_000
    assert defaults["segment.ms"] == 604_800_000
    assert defaults["retention.bytes"] == -1
    assert defaults["segment.index.bytes"] == 10_485_760
    assert defaults["index.interval.bytes"] == 4096
    assert defaults["delete.retention.ms"] == 86_400_000
    assert defaults["min.cleanable.dirty.ratio"] == 0.5
    assert defaults["min.compaction.lag.ms"] == 0
    assert defaults["max.compaction.lag.ms"] == LONG_MAX
    assert defaults["message.timestamp.type"] == "CreateTime"
    assert defaults["compression.type"] == "producer"


def test_every_topic_config_names_an_existing_broker_synonym():
    """All but the replication throttle lists, which have no broker default in Kafka either."""
    broker_names = {d.name for d in CONFIG_DEFS if d.scope == "broker"}
    without = {d.name for d in CONFIG_DEFS if d.scope == "topic" and d.synonym is None}
    assert without == {"leader.replication.throttled.replicas", "follower.replication.throttled.replicas"}
    for d in CONFIG_DEFS:
        if d.scope == "topic" and d.name not in without:
            assert d.synonym in broker_names, d.name
    assert broker_synonyms("retention.ms") == ("log.retention.ms", "log.retention.minutes", "log.retention.hours")
    assert broker_synonyms("segment.bytes") == ("log.segment.bytes",)


def test_validate_topic_configs_returns_typed_values():
    assert validate_topic_configs({
        "cleanup.policy": "compact,delete",
        "retention.ms": "-1",
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "true",
        "min.cleanable.dirty.ratio": "0.1",
        "segment.bytes": None,
    }) == {
        "cleanup.policy": ["compact", "delete"],
        "retention.ms": -1,
        "min.insync.replicas": 2,
        "unclean.leader.election.enable": True,
        "min.cleanable.dirty.ratio": 0.1,
        "segment.bytes": None,
    }


@pytest.mark.parametrize(
    ("configs", "expected"),
    [
        ({"retention.ms": "soon"}, "invalid value 'soon' for config 'retention.ms': expected a long integer"),
        ({"segment.bytes": "10"}, "invalid value '10' for config 'segment.bytes': expected a value at least 14"),
        ({"cleanup.policy": "archive"}, "expected one of delete, compact"),
        ({"compression.type": "brotli"}, "expected one of uncompressed, zstd, lz4, snappy, gzip, producer"),
        ({"retension.ms": "1"}, "unknown topic config 'retension.ms'; did you mean 'retention.ms'?"),
        ({"log.segment.bytes": "1"}, "unknown topic config 'log.segment.bytes'"),
    ],
)
def test_validate_topic_configs_rejects_with_one_line(configs, expected):
    with pytest.raises(ConfigError) as info:
        validate_topic_configs(configs)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


# --- docs -------------------------------------------------------------------------------


def test_doc_markdown_lists_every_config_once_per_scope():
    markdown = describe_doc_markdown()
    for d in CONFIG_DEFS:
        assert f"| `{d.name}` |" in markdown
    assert "/tmp/kafka-logs" in markdown
    assert "selects cluster mode" in markdown


# --- round trip against Java's escaping -----------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)


def _java_escape(text: str) -> str:
    """Escape as java.util.Properties.store does (spaces everywhere, to keep them)."""
    out = []
    for ch in text:
        if ch in "\\=:#! ":
            out.append("\\" + ch)
        elif ch in "\t\n\r\f":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f"}[ch])
        elif ord(ch) < 0x20 or 0x7E < ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


@given(st.dictionaries(_text.filter(bool), _text, max_size=8), st.sampled_from(["=", ": ", " ", " = "]))
def test_properties_round_trip_java_escaped_text(props, separator):
    text = "# generated\n" + "".join(
        f"{_java_escape(k)}{separator}{_java_escape(v)}\n" for k, v in props.items()
    )
    assert parse_properties(text) == props
